//go:build amd64 && !purego

package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"
)

// TestInterpreterMatchesHardware validates the assembly interpreter
// (asmvm_test.go) against this CPU: every AVX2 float32 microkernel (the
// row variants and their bias, A-streaming and prefetching forms) and
// every AVX2 int8 one runs natively and interpreted on the same random
// data, and the two must give the same bits — every rounding, lane,
// offset and branch the interpreter models. Where the CPU has AVX-512
// (and AVX512_VNNI) the AVX-512 float32 family (and the VNNI int8
// kernels) are compared the same way; elsewhere those run interpreted
// only, in TestInterpretedAVX512 and TestInterpretedVNNI, with the same
// instructions as the AVX2 ones on wider registers, plus VPXORD and
// VPDPWSSD.
func TestInterpreterMatchesHardware(t *testing.T) {
	avx2, _ := cpuFeatures()
	if !avx2 {
		t.Skip("this CPU has no AVX2+FMA: the interpreter is checked on one that has")
	}
	r := rand.New(rand.NewPCG(21, 22))
	type fkernel struct {
		name string
		mr   int
		fn   func(k int, a, b, c *float32, ldc int, accum int)
		bias func(k int, a, b, c *float32, ldc int, accum int, bias *float32)
		next func(k int, a, b, c *float32, ldc int, accum int, next uintptr)
		nb   func(k int, a, b, c *float32, ldc int, accum int, bias *float32, next uintptr)
	}
	type family struct {
		nr int
		ks []fkernel
	}
	fams := []family{{16, []fkernel{
		{"sgemmKernelAVX2R1", 1, sgemmKernelAVX2R1, nil, nil, nil},
		{"sgemmKernelAVX2R2", 2, sgemmKernelAVX2R2, nil, nil, nil},
		{"sgemmKernelAVX2R3", 3, sgemmKernelAVX2R3, nil, nil, nil},
		{"sgemmKernelAVX2R4", 4, sgemmKernelAVX2R4, nil, nil, nil},
		{"sgemmKernelAVX2R5", 5, sgemmKernelAVX2R5, nil, nil, nil},
		{"sgemmKernelAVX2R6", 6, sgemmKernelAVX2R6, nil, nil, nil},
		{"sgemmKernelAVX2R6A", 6, sgemmKernelAVX2R6A, nil, nil, nil},
		{"sgemmKernelAVX2R1B", 1, nil, sgemmKernelAVX2R1B, nil, nil},
		{"sgemmKernelAVX2R2B", 2, nil, sgemmKernelAVX2R2B, nil, nil},
		{"sgemmKernelAVX2R3B", 3, nil, sgemmKernelAVX2R3B, nil, nil},
		{"sgemmKernelAVX2R4B", 4, nil, sgemmKernelAVX2R4B, nil, nil},
		{"sgemmKernelAVX2R5B", 5, nil, sgemmKernelAVX2R5B, nil, nil},
		{"sgemmKernelAVX2R6B", 6, nil, sgemmKernelAVX2R6B, nil, nil},
		{"sgemmKernelAVX2R5N", 5, nil, nil, sgemmKernelAVX2R5N, nil},
		{"sgemmKernelAVX2R6N", 6, nil, nil, sgemmKernelAVX2R6N, nil},
		{"sgemmKernelAVX2R5NB", 5, nil, nil, nil, sgemmKernelAVX2R5NB},
		{"sgemmKernelAVX2R6NB", 6, nil, nil, nil, sgemmKernelAVX2R6NB},
	}}}
	if _, avx512 := cpuFeatures(); avx512 {
		fams = append(fams, family{32, []fkernel{
			{"sgemmKernelAVX512R1", 1, sgemmKernelAVX512R1, nil, nil, nil},
			{"sgemmKernelAVX512R2", 2, sgemmKernelAVX512R2, nil, nil, nil},
			{"sgemmKernelAVX512R3", 3, sgemmKernelAVX512R3, nil, nil, nil},
			{"sgemmKernelAVX512R4", 4, sgemmKernelAVX512R4, nil, nil, nil},
			{"sgemmKernelAVX512R5", 5, sgemmKernelAVX512R5, nil, nil, nil},
			{"sgemmKernelAVX512R6", 6, sgemmKernelAVX512R6, nil, nil, nil},
			{"sgemmKernelAVX512R6A", 6, sgemmKernelAVX512R6A, nil, nil, nil},
			{"sgemmKernelAVX512R1B", 1, nil, sgemmKernelAVX512R1B, nil, nil},
			{"sgemmKernelAVX512R2B", 2, nil, sgemmKernelAVX512R2B, nil, nil},
			{"sgemmKernelAVX512R3B", 3, nil, sgemmKernelAVX512R3B, nil, nil},
			{"sgemmKernelAVX512R4B", 4, nil, sgemmKernelAVX512R4B, nil, nil},
			{"sgemmKernelAVX512R5B", 5, nil, sgemmKernelAVX512R5B, nil, nil},
			{"sgemmKernelAVX512R6B", 6, nil, sgemmKernelAVX512R6B, nil, nil},
			{"sgemmKernelAVX512R5N", 5, nil, nil, sgemmKernelAVX512R5N, nil},
			{"sgemmKernelAVX512R6N", 6, nil, nil, sgemmKernelAVX512R6N, nil},
			{"sgemmKernelAVX512R5NB", 5, nil, nil, nil, sgemmKernelAVX512R5NB},
			{"sgemmKernelAVX512R6NB", 6, nil, nil, nil, sgemmKernelAVX512R6NB},
		}})
	} else {
		t.Log("this CPU has no AVX-512: the AVX-512 kernels are checked interpreted only (TestInterpretedAVX512)")
	}
	prog := vmListing(t, "sgemm_rows_amd64.s")
	compared := 0
	for _, f := range fams {
		nr := f.nr
		compared += len(f.ks)
		for _, k := range f.ks {
			fn := prog[k.name]
			if fn == nil {
				t.Fatalf("no %s in the listing", k.name)
			}
			for _, depth := range []int{1, 2, 3, 4, 5, 7, 64, 255, 256} {
				for accum := range 2 {
					a, b := randSlice(r, k.mr*depth), randSlice(r, nr*depth)
					bias := randSlice(r, nr)
					ldc := nr + 3
					c0 := randSlice(r, (k.mr-1)*ldc+nr)
					native, interp := append([]float32(nil), c0...), append([]float32(nil), c0...)
					vm := &asmVM{}
					vm.args = []uint64{uint64(depth), vmRegionOf(vm, a), vmRegionOf(vm, b), vmRegionOf(vm, interp), uint64(ldc), uint64(accum)}
					switch {
					case k.fn != nil:
						k.fn(depth, &a[0], &b[0], &native[0], ldc, accum)
					case k.bias != nil:
						k.bias(depth, &a[0], &b[0], &native[0], ldc, accum, &bias[0])
						vm.args = append(vm.args, vmRegionOf(vm, bias))
					case k.next != nil:
						k.next(depth, &a[0], &b[0], &native[0], ldc, accum, uintptr(unsafe.Pointer(&b[0])))
						vm.args = append(vm.args, vmRegionOf(vm, b))
					default:
						k.nb(depth, &a[0], &b[0], &native[0], ldc, accum, &bias[0], uintptr(unsafe.Pointer(&b[0])))
						vm.args = append(vm.args, vmRegionOf(vm, bias), vmRegionOf(vm, b))
					}
					if err := vm.run(fn, 1<<22); err != nil {
						t.Fatalf("%s depth %d: %v", k.name, depth, err)
					}
					for i := range native {
						if math.Float32bits(native[i]) != math.Float32bits(interp[i]) {
							t.Fatalf("%s depth %d accum %d: C[%d] native %v, interpreted %v", k.name, depth, accum, i, native[i], interp[i])
						}
					}
				}
			}
		}

	}

	// The int8 kernels, through the interpreter and natively, on random
	// int16 values (sums that overflow int32 included: both wrap).
	t.Logf("%d float32 kernels native and interpreted: same bits", compared)
	type qfamily struct {
		prefix  string
		natives []func(kp int, a *int16, lda int, b *int16, c *float32, ldc int, sa, sw, bias *float32, accum int)
	}
	qfams := []qfamily{{"qgemmAVX2", []func(kp int, a *int16, lda int, b *int16, c *float32, ldc int, sa, sw, bias *float32, accum int){
		qgemmAVX2R1, qgemmAVX2R2, qgemmAVX2R3, qgemmAVX2R4, qgemmAVX2R5, qgemmAVX2R6,
	}}}
	if hasVNNI() {
		qfams = append(qfams, qfamily{"qgemmVNNI", []func(kp int, a *int16, lda int, b *int16, c *float32, ldc int, sa, sw, bias *float32, accum int){
			qgemmVNNIR1, qgemmVNNIR2, qgemmVNNIR3, qgemmVNNIR4, qgemmVNNIR5, qgemmVNNIR6,
		}})
	} else {
		t.Log("this CPU has no AVX512_VNNI: the VNNI kernels are checked interpreted only (TestInterpretedVNNI)")
	}
	for _, qf := range qfams {
		q, natives := vmQKernel(t, qf.prefix), qf.natives
		t.Logf("int8 kernels %sR1…R6 native and interpreted", qf.prefix)
		for rows := 1; rows <= 6; rows++ {
			for _, kp := range []int{1, 3, 4, 9, 64} {
				for _, withBias := range []bool{false, true} {
					for accum := range 2 {
						lda := 2*kp + 2
						a := make([]int16, rows*lda)
						b := make([]int16, 2*qnr*kp)
						for i := range a {
							a[i] = int16(r.IntN(65536) - 32768)
						}
						for i := range b {
							b[i] = int16(r.IntN(255) - 127)
						}
						sa, sw := randSlice(r, rows), randSlice(r, qnr)
						var bp *float32
						if withBias {
							bp = &randSlice(r, qnr)[0]
						}
						ldc := qnr + 5
						c0 := randSlice(r, (rows-1)*ldc+qnr)
						native, interp := append([]float32(nil), c0...), append([]float32(nil), c0...)
						natives[rows-1](kp, &a[0], lda, &b[0], &native[0], ldc, &sa[0], &sw[0], bp, accum)
						q(rows, kp, &a[0], lda, &b[0], &interp[0], ldc, &sa[0], &sw[0], bp, accum)
						for i := range native {
							if math.Float32bits(native[i]) != math.Float32bits(interp[i]) {
								t.Fatalf("%s: C[%d] native %v, interpreted %v", fmt.Sprintf("%sR%d kp=%d bias=%v accum=%d", qf.prefix, rows, kp, withBias, accum), i, native[i], interp[i])
							}
						}
					}
				}
			}
		}
	}
}
