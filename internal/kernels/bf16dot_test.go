package kernels

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// withBF16Pairs runs f with ToBF16 laying weights out for the native
// products (in assembly where this CPU has AVX512_BF16, else in bgemmGo).
func withBF16Pairs(t *testing.T, f func()) {
	t.Helper()
	old, _ := SetBF16Layout("native")
	defer SetBF16Layout(old)
	f()
}

// bf16Round returns s rounded to bfloat16 (as the native path rounds its
// input and weights) and widened back.
func bf16Round(s []float32) []float32 {
	r := make([]float32, len(s))
	for i, v := range s {
		r[i] = fromBF16(toBF16DAZ(v))
	}
	return r
}

// TestLinearBF16Native checks LinearPacked on native bf16 weights against
// the float64 product of the bf16-rounded input and weight (the path's
// only approximation is that rounding; the sums are float32), over odd
// shapes (odd k, partial panels, every row count, several K blocks),
// epilogues and bias, on every kernel selection.
func TestLinearBF16Native(t *testing.T) {
	withBF16Pairs(t, func() {
		withKernels(t, func(t *testing.T) {
			r := rand.New(rand.NewPCG(41, 42))
			for _, sz := range [][3]int{{1, 3, 2}, {1, 1, 1}, {5, 33, 7}, {50, 96, 77}, {13, 65, 600}, {130, 40, 17}, {7, 64, 513}} {
				m, n, k := sz[0], sz[1], sz[2]
				x, w, bias := randSlice(r, m*k), randSlice(r, n*k), randSlice(r, n)
				pw := PackLinear(w, n, k).ToBF16()
				if pw.bp == nil || !pw.BF16() || pw.Bytes() < 2*n*k {
					t.Fatalf("%v: ToBF16 did not give the native layout", sz)
				}
				wr := pw.Unpack()
				if want := bf16Round(w); !slicesEqualBits(wr, want) {
					t.Fatalf("%v: Unpack is not the rounded weight", sz)
				}
				for _, epi := range []Epilogue{EpiNone, EpiQuickGELU, EpiResidual} {
					for _, bb := range [][]float32{nil, bias} {
						y := randSlice(r, m*n)
						res := append([]float32(nil), y...)
						LinearPacked(y, x, pw, bb, m, epi)
						want, mag := refLinear(bf16Round(x), wr, bb, m, n, k)
						for i, v := range want {
							switch epi {
							case EpiQuickGELU:
								want[i] = v / (1 + math.Exp(-1.702*v))
								mag[i] += 1e-6
							case EpiResidual:
								want[i] = v + float64(res[i])
								mag[i] += math.Abs(float64(res[i]))
							}
						}
						checkClose(t, fmt.Sprintf("%v %v bias=%v", sz, epi, bb != nil), y, want, mag, 2e-6*math.Sqrt(float64(k)+1))
					}
				}
			}
		})
	})
}

func slicesEqualBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// TestBF16NativeAccuracy: the native bf16 product of a ViT-B/32-sized
// layer (768 → 3072, 50 rows) against float32: the cosine of the outputs
// and the largest error relative to the output's scale.
func TestBF16NativeAccuracy(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	m, n, k := 50, 3072, 768
	x, w := randSlice(r, m*k), randSlice(r, n*k)
	for i := range w {
		w[i] *= 0.03
	}
	p := PackLinear(w, n, k)
	ref := make([]float32, m*n)
	LinearPacked(ref, x, p, nil, m, EpiNone)
	var got []float32
	withBF16Pairs(t, func() {
		got = make([]float32, m*n)
		LinearPacked(got, x, p.ToBF16(), nil, m, EpiNone)
	})
	var dot, na, nb float64
	for i := range ref {
		dot += float64(ref[i]) * float64(got[i])
		na += float64(ref[i]) * float64(ref[i])
		nb += float64(got[i]) * float64(got[i])
	}
	cos := dot / math.Sqrt(na*nb)
	t.Logf("cosine to float32: %.6f", cos)
	if cos < 0.9999 {
		t.Errorf("cosine %v to the float32 product", cos)
	}
}

// TestCheckBKernel: the start-up check accepts the portable kernel and
// rejects broken ones.
func TestCheckBKernel(t *testing.T) {
	if err := checkBKernel("go", bgemmGo); err != nil {
		t.Fatal(err)
	}
	for name, fn := range map[string]bgemmFunc{
		"drops a pair": func(r, kp int, a *uint16, lda int, b *uint16, c *float32, ldc int, bias *float32, accum int) {
			bgemmGo(r, max(kp-1, 0), a, lda, b, c, ldc, bias, accum)
		},
		"ignores accum": func(r, kp int, a *uint16, lda int, b *uint16, c *float32, ldc int, bias *float32, accum int) {
			bgemmGo(r, kp, a, lda, b, c, ldc, bias, 0)
		},
		"writes past the tile": func(r, kp int, a *uint16, lda int, b *uint16, c *float32, ldc int, bias *float32, accum int) {
			bgemmGo(r, kp, a, lda, b, c, ldc, bias, accum)
			*(*float32)(unsafe.Add(unsafe.Pointer(c), 4*bnr)) = 1e9
		},
	} {
		if err := checkBKernel(name, fn); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := checkBConvert(roundBF16Go); err != nil {
		t.Fatal(err)
	}
	if err := checkBConvert(func(dst []uint16, src []float32) {
		for i, v := range src {
			dst[i] = toBF16(v) // keeps denormals
		}
	}); err == nil {
		t.Error("a conversion without DAZ passed")
	}
}

// vmBKernel returns an interpreter-backed native bf16 microkernel
// dispatching r rows to bgemmR<r> of bf16dot_amd64.s.
func vmBKernel(t *testing.T) bgemmFunc {
	prog := vmListing(t, "bf16dot_amd64.s")
	return func(r, kp int, a *uint16, lda int, b *uint16, c *float32, ldc int, bias *float32, accum int) {
		t.Helper()
		name := fmt.Sprintf("bgemmR%d", r)
		fn := prog[name]
		if fn == nil {
			t.Fatalf("bf16dot_amd64.s: no function %s in the listing", name)
		}
		vm := &asmVM{}
		var biasAddr uint64
		if bias != nil {
			biasAddr = vmRegionOf(vm, unsafe.Slice(bias, bnr))
		}
		vm.args = []uint64{uint64(kp),
			vmRegionOf(vm, unsafe.Slice(a, (r-1)*lda+2*kp)), uint64(lda),
			vmRegionOf(vm, unsafe.Slice(b, 2*bnr*kp)),
			vmRegionOf(vm, unsafe.Slice(c, (r-1)*ldc+bnr)), uint64(ldc),
			biasAddr, uint64(accum)}
		if err := vm.run(fn, 1<<22); err != nil {
			t.Fatalf("interpreting %s: %v", name, err)
		}
	}
}

// TestInterpretedBF16 runs the AVX512_BF16 kernels, which no development
// machine can execute, in the interpreter: the microkernels through the
// start-up check and on random bf16 data (same bits as bgemmGo), and as
// the native path of LinearPacked on odd shapes; the conversion through
// its start-up check and on random values.
func TestInterpretedBF16(t *testing.T) {
	kern := vmBKernel(t)
	if err := checkBKernel("avx512bf16 (interpreted)", kern); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(9, 10))
	if err := bKernelAgrees(r, kern); err != nil {
		t.Fatalf("interpreted: %v", err)
	}

	prog := vmListing(t, "bf16dot_amd64.s")
	cvt := func(dst []uint16, src []float32) {
		vm := &asmVM{}
		vm.args = []uint64{vmRegionOf(vm, dst), vmRegionOf(vm, src), uint64(len(src))}
		if err := vm.run(prog["bCvtAVX512"], 1<<20); err != nil {
			t.Fatalf("interpreting bCvtAVX512: %v", err)
		}
	}
	if err := checkBConvert(cvt); err != nil {
		t.Fatal(err)
	}
	src := make([]float32, 256)
	for i := range src {
		src[i] = math.Float32frombits(r.Uint32())
	}
	dst := make([]uint16, len(src))
	cvt(dst, src)
	for i, v := range src {
		if want := toBF16DAZ(v); dst[i] != want {
			t.Fatalf("bCvtAVX512(%#08x) = %#04x, want %#04x", math.Float32bits(v), dst[i], want)
		}
	}
}

// bKernelAgrees runs kern and bgemmGo on random bf16 data (1 to 6 rows,
// several depths, bias, store and accumulate) and reports the first
// output that differs in its bits.
func bKernelAgrees(r *rand.Rand, kern bgemmFunc) error {
	for _, kp := range []int{1, 3, 4, 9, 128} {
		for rows := 1; rows <= 6; rows++ {
			lda := 2*kp + 4
			a := make([]uint16, rows*lda)
			b := make([]uint16, 2*bnr*kp)
			for i := range a {
				a[i] = toBF16DAZ(float32(r.NormFloat64()))
			}
			for i := range b {
				b[i] = toBF16DAZ(float32(r.NormFloat64() * 0.05))
			}
			bias := randSlice(r, bnr)
			for accum := range 2 {
				got, want := randSlice(r, rows*(bnr+1)), make([]float32, rows*(bnr+1))
				copy(want, got)
				kern(rows, kp, &a[0], lda, &b[0], &got[0], bnr+1, &bias[0], accum)
				bgemmGo(rows, kp, &a[0], lda, &b[0], &want[0], bnr+1, &bias[0], accum)
				for i := range got {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						return fmt.Errorf("%d rows, %d pairs, accum %d: C[%d] = %v, bgemmGo %v", rows, kp, accum, i, got[i], want[i])
					}
				}
			}
		}
	}
	return nil
}

// TestBF16Encoding checks the instructions gen/bf16dot.go encodes by hand
// (BYTE directives, the GNU assembler's spelling in a comment) against
// the GNU assembler, where one is installed.
func TestBF16Encoding(t *testing.T) {
	as, err := exec.LookPath("as")
	if err != nil {
		t.Skip("no GNU assembler (as, from binutils) on PATH: the hand-encoded AVX512_BF16 instructions cannot be checked against it here")
	}
	f, err := os.Open("bf16dot_amd64.s")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	byteRe := regexp.MustCompile(`BYTE \$0x([0-9a-f]{2})`)
	want := map[string][]byte{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		i := strings.Index(line, "// ")
		if !strings.Contains(line, "BYTE") || i < 0 {
			continue
		}
		var code []byte
		for _, m := range byteRe.FindAllStringSubmatch(line[:i], -1) {
			v, _ := strconv.ParseUint(m[1], 16, 8)
			code = append(code, byte(v))
		}
		want[strings.TrimSpace(line[i+3:])] = code
	}
	if len(want) == 0 {
		t.Fatal("no encoded instructions in bf16dot_amd64.s")
	}
	dir := t.TempDir()
	var src strings.Builder
	var order []string
	for ins := range want {
		order = append(order, ins)
		src.WriteString(ins + "\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "x.s"), []byte(src.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(as, "--64", "-o", filepath.Join(dir, "x.o"), filepath.Join(dir, "x.s")).CombinedOutput(); err != nil {
		t.Fatalf("as: %v\n%s", err, out)
	}
	objcopy, err := exec.LookPath("objcopy")
	if err != nil {
		t.Skip("no objcopy (binutils) on PATH to read the GNU assembler's output")
	}
	if out, err := exec.Command(objcopy, "-O", "binary", "-j", ".text", filepath.Join(dir, "x.o"), filepath.Join(dir, "x.bin")).CombinedOutput(); err != nil {
		t.Fatalf("objcopy: %v\n%s", err, out)
	}
	text, err := os.ReadFile(filepath.Join(dir, "x.bin"))
	if err != nil {
		t.Fatal(err)
	}
	for _, ins := range order {
		code := want[ins]
		if len(text) < len(code) || !bytes.Equal(text[:len(code)], code) {
			t.Fatalf("%s: encoded % x, GNU as % x", ins, code, text[:min(len(text), len(code)+2)])
		}
		text = text[len(code):]
	}
	if len(text) != 0 {
		t.Fatalf("GNU as wrote %d bytes more", len(text))
	}
	t.Logf("%d encoded instructions match GNU as", len(order))
}

// TestBF16KernelsAgree runs the AVX512_BF16 microkernels and the
// conversion natively against the portable ones on random data
// (bit for bit). It needs a CPU with AVX512_BF16.
func TestBF16KernelsAgree(t *testing.T) {
	if !bAsm() {
		t.Skipf("bf16 products here: %q, not \"avx512bf16\": this CPU has no AVX512_BF16 (or the portable kernel is forced), so VDPBF16PS cannot run here; TestInterpretedBF16 runs it interpreted", BF16Kernel())
	}
	r := rand.New(rand.NewPCG(19, 20))
	if err := bKernelAgrees(r, bgemmAsm); err != nil {
		t.Errorf("VDPBF16PS differs from the specified order of roundings: %v", err)
	}
	src := make([]float32, 4096)
	for i := range src {
		src[i] = math.Float32frombits(r.Uint32())
	}
	dst := make([]uint16, len(src))
	roundBF16(true, dst, src)
	for i, v := range src {
		if want := toBF16DAZ(v); dst[i] != want {
			t.Fatalf("VCVTNEPS2BF16(%#08x) = %#04x, want %#04x", math.Float32bits(v), dst[i], want)
		}
	}
}

// TestPackLinearBF16 checks that packing straight to bf16 gives the weight
// that packing in float32 and converting gives, in either layout.
func TestPackLinearBF16(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 7))
	for _, layout := range []string{"native", "widen"} {
		old, _ := SetBF16Layout(layout)
		for _, sz := range [][2]int{{1, 1}, {33, 7}, {64, 600}, {70, 513}} {
			n, k := sz[0], sz[1]
			w := randSlice(r, n*k)
			a, b := PackLinearBF16(w, n, k), PackLinear(w, n, k).ToBF16()
			if (a.bp != nil) != (layout == "native") || !slicesEqualBits(a.Unpack(), b.Unpack()) || a.Bytes() != b.Bytes() {
				t.Errorf("%s %v: PackLinearBF16 differs from PackLinear().ToBF16()", layout, sz)
			}
			if a.bp != nil && !slices.Equal(a.bp.data, b.bp.data) {
				t.Errorf("%s %v: native panels differ", layout, sz)
			}
		}
		SetBF16Layout(old)
	}
}
