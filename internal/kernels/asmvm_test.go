package kernels

// An interpreter for the subset of amd64 assembly the microkernels use, so
// that the AVX-512 and AVX512_VNNI kernels, which no development machine
// can run, are still executed by the tests: each kernel's instructions come
// from the Go assembler's own listing (`go tool asm -S`, macros expanded,
// branch targets resolved), and the interpreter runs them over the test's
// buffers. Its semantics are checked in asmvm_amd64_test.go by running
// every AVX2 kernel both natively and interpreted on random data and
// requiring the same bits; the AVX-512 and VNNI kernels add only wider
// registers, VPXORD and VPDPWSSD.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"
)

// vmInst is one instruction of a listing.
type vmInst struct {
	pc   int
	op   string
	args []string
	line string // the listing's source position, for errors
}

// vmProgram holds a listing's functions by name ("sgemmKernelAVX512").
type vmProgram map[string][]vmInst

var (
	vmListings   = map[string]vmProgram{}
	vmListingsMu sync.Mutex
)

// vmListing assembles file (in this package's directory) with the Go
// assembler for amd64 and parses its listing; it skips the test, saying
// why, where no Go toolchain can be run.
func vmListing(t *testing.T, file string) vmProgram {
	t.Helper()
	vmListingsMu.Lock()
	defer vmListingsMu.Unlock()
	if p, ok := vmListings[file]; ok {
		return p
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, err := os.Stat(goBin); err != nil {
			t.Skipf("no go command on PATH or in GOROOT to list %s with: the assembly interpreter tests need it", file)
		}
	}
	root, err := exec.Command(goBin, "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	inc := filepath.Join(strings.TrimSpace(string(root)), "pkg", "include")
	cmd := exec.Command(goBin, "tool", "asm", "-S", "-I", inc, "-p", "kernels", "-o", os.DevNull, file)
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=amd64")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("go tool asm -S %s: %v\n%s", file, err, errb.String())
	}
	p := parseListing(out.String() + errb.String())
	if len(p) == 0 {
		t.Fatalf("go tool asm -S %s: no functions in its listing", file)
	}
	vmListings[file] = p
	return p
}

// parseListing reads `go tool asm -S` output: a line "pkg.name STEXT …"
// starts a function, and each instruction line is
// "\t0x0000 00000 (file.s:12)\tOP\targ, arg".
func parseListing(s string) vmProgram {
	p := vmProgram{}
	var cur string
	for _, line := range strings.Split(s, "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[1] == "STEXT" {
			cur = f[0][strings.LastIndexByte(f[0], '.')+1:]
			continue
		}
		parts := strings.Split(line, "\t")
		if cur == "" || len(parts) < 3 || !strings.Contains(parts[1], "(") {
			continue // the hex dump, relocations
		}
		pos := strings.Fields(parts[1])
		if len(pos) < 3 {
			continue
		}
		pc, err := strconv.Atoi(pos[1])
		if err != nil {
			continue
		}
		in := vmInst{pc: pc, op: parts[2], line: strings.Trim(pos[2], "()")}
		switch in.op {
		case "TEXT", "FUNCDATA", "PCDATA":
			continue
		}
		if len(parts) > 3 && parts[3] != "" {
			for _, a := range strings.Split(parts[3], ", ") {
				in.args = append(in.args, strings.TrimSpace(a))
			}
		}
		if in.op == "BYTE" {
			// The BYTE directives of one source line are one encoded
			// instruction (see decodeEVEX).
			fn := p[cur]
			if n := len(fn); n > 0 && fn[n-1].op == "BYTES" && fn[n-1].line == in.line {
				fn[n-1].args = append(fn[n-1].args, in.args...)
				continue
			}
			in.op = "BYTES"
		}
		p[cur] = append(p[cur], in)
	}
	return p
}

// vmRegion is a buffer the interpreted code may read and write.
type vmRegion struct {
	addr uint64
	mem  []byte
}

// asmVM is the machine state: general registers, 32 vector registers of
// 64 bytes (X/Y/Z views of the same storage), the operands of the last
// flag-setting instruction, the argument frame and the buffers.
type asmVM struct {
	gpr     map[string]int64
	vec     [32][64]byte
	fa, fb  int64 // flags as "fa compared with fb"
	args    []uint64
	regions []vmRegion
}

// vmRegionOf registers s (a Go slice) and returns its address.
func vmRegionOf[T any](vm *asmVM, s []T) uint64 {
	if len(s) == 0 {
		return 0
	}
	var z T
	p := unsafe.Pointer(&s[0])
	vm.regions = append(vm.regions, vmRegion{
		addr: uint64(uintptr(p)),
		mem:  unsafe.Slice((*byte)(p), len(s)*int(unsafe.Sizeof(z))),
	})
	return uint64(uintptr(p))
}

func (vm *asmVM) bytesAt(addr uint64, n int) ([]byte, error) {
	for _, r := range vm.regions {
		if addr >= r.addr && addr+uint64(n) <= r.addr+uint64(len(r.mem)) {
			return r.mem[addr-r.addr : addr-r.addr+uint64(n)], nil
		}
	}
	return nil, fmt.Errorf("%d-byte access at %#x outside every buffer passed", n, addr)
}

// vecReg returns the register number and width in bytes of X0–X31,
// Y0–Y31, Z0–Z31, or ok false.
func vecReg(s string) (n, width int, ok bool) {
	if len(s) < 2 {
		return 0, 0, false
	}
	switch s[0] {
	case 'X':
		width = 16
	case 'Y':
		width = 32
	case 'Z':
		width = 64
	default:
		return 0, 0, false
	}
	n, err := strconv.Atoi(s[1:])
	if err != nil || n < 0 || n > 31 {
		return 0, 0, false
	}
	return n, width, true
}

var vmGPRs = map[string]bool{"AX": true, "BX": true, "CX": true, "DX": true, "SI": true, "DI": true, "BP": true,
	"R8": true, "R9": true, "R10": true, "R11": true, "R12": true, "R13": true, "R14": true, "R15": true}

// addr evaluates a memory operand "off(REG)" or "off(REG)(IDX*s)".
func (vm *asmVM) addr(s string) (uint64, error) {
	i := strings.IndexByte(s, '(')
	if i < 0 {
		return 0, fmt.Errorf("not a memory operand: %q", s)
	}
	var off int64
	if i > 0 {
		v, err := strconv.ParseInt(s[:i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("offset of %q: %v", s, err)
		}
		off = v
	}
	rest := s[i:]
	j := strings.IndexByte(rest, ')')
	base := rest[1:j]
	if !vmGPRs[base] {
		return 0, fmt.Errorf("base register of %q", s)
	}
	a := vm.gpr[base] + off
	if rest = rest[j+1:]; rest != "" {
		var idx string
		var scale int64
		if _, err := fmt.Sscanf(strings.NewReplacer("(", "", ")", "", "*", " ").Replace(rest), "%s %d", &idx, &scale); err != nil || !vmGPRs[idx] {
			return 0, fmt.Errorf("index of %q", s)
		}
		a += vm.gpr[idx] * scale
	}
	return uint64(a), nil
}

// scalar evaluates an integer source: $imm, a register, an argument
// "name+off(FP)" (the listing's offsets count the return address) or a
// 64-bit memory operand.
func (vm *asmVM) scalar(s string) (int64, error) {
	switch {
	case strings.HasPrefix(s, "$"):
		return strconv.ParseInt(s[1:], 10, 64)
	case vmGPRs[s]:
		return vm.gpr[s], nil
	case strings.HasSuffix(s, "(FP)"):
		plus := strings.LastIndexByte(s, '+')
		off, err := strconv.Atoi(s[plus+1 : len(s)-4])
		if err != nil || (off-8)%8 != 0 || (off-8)/8 >= len(vm.args) || off < 8 {
			return 0, fmt.Errorf("argument %q outside the %d-word frame", s, len(vm.args))
		}
		return int64(vm.args[(off-8)/8]), nil
	}
	a, err := vm.addr(s)
	if err != nil {
		return 0, err
	}
	b, err := vm.bytesAt(a, 8)
	if err != nil {
		return 0, err
	}
	return int64(binary.LittleEndian.Uint64(b)), nil
}

// vecSrc returns width bytes of a vector source: a register (its low
// width bytes) or memory.
func (vm *asmVM) vecSrc(s string, width int) ([]byte, error) {
	if n, _, ok := vecReg(s); ok {
		return vm.vec[n][:width], nil
	}
	a, err := vm.addr(s)
	if err != nil {
		return nil, err
	}
	return vm.bytesAt(a, width)
}

// setVec writes v (width bytes) to register n, zeroing the rest as VEX
// and EVEX encodings do.
func (vm *asmVM) setVec(n int, v []byte) {
	var r [64]byte
	copy(r[:], v)
	vm.vec[n] = r
}

func f32(b []byte, i int) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])) }
func i32(b []byte, i int) int32   { return int32(binary.LittleEndian.Uint32(b[4*i:])) }
func i16(b []byte, i int) int32   { return int32(int16(binary.LittleEndian.Uint16(b[2*i:]))) }
func put32(b []byte, i int, v uint32) {
	binary.LittleEndian.PutUint32(b[4*i:], v)
}

// fma32 is the float32 fused multiply-add x·y + z, rounded once.
func fma32(x, y, z float32) float32 {
	p, q := float64(x)*float64(y), float64(z) // p exact: 48 significant bits
	s := p + q
	if v := s - p; (p-(s-v))+(q-v) == 0 { // TwoSum: the rounding error of s
		return float32(s) // s is the exact sum: one rounding
	}
	b := new(big.Float).SetPrec(300).SetFloat64(p)
	b.Add(b, new(big.Float).SetPrec(300).SetFloat64(float64(z)))
	r, _ := b.SetPrec(24).Float32()
	return r
}

// run interprets fn until RET, at most limit instructions.
func (vm *asmVM) run(prog []vmInst, limit int) error {
	at := map[int]int{}
	for i, in := range prog {
		if _, ok := at[in.pc]; !ok {
			at[in.pc] = i
		}
	}
	if vm.gpr == nil {
		vm.gpr = map[string]int64{}
	}
	for i, steps := 0, 0; ; steps++ {
		if i >= len(prog) {
			return fmt.Errorf("ran off the end of the function")
		}
		if steps > limit {
			return fmt.Errorf("more than %d instructions: a loop that does not end?", limit)
		}
		in := prog[i]
		next, err := vm.step(in, at)
		if err != nil {
			return fmt.Errorf("%s: %s %s: %v", in.line, in.op, strings.Join(in.args, ", "), err)
		}
		if next == -1 {
			return nil
		}
		if next >= 0 {
			i = next
		} else {
			i++
		}
	}
}

// step executes in; it returns the index of the next instruction when it
// jumps, -1 at RET and -2 otherwise.
func (vm *asmVM) step(in vmInst, at map[int]int) (int, error) {
	a := in.args
	need := func(n int) error {
		if len(a) != n {
			return fmt.Errorf("want %d operands", n)
		}
		return nil
	}
	jump := func(taken bool) (int, error) {
		if err := need(1); err != nil {
			return 0, err
		}
		if !taken {
			return -2, nil
		}
		pc, err := strconv.Atoi(a[0])
		if err != nil {
			return 0, fmt.Errorf("branch target %q", a[0])
		}
		j, ok := at[pc]
		if !ok {
			return 0, fmt.Errorf("branch target %d is not an instruction", pc)
		}
		return j, nil
	}
	dstGPR := func(s string) error {
		if !vmGPRs[s] {
			return fmt.Errorf("destination %q is not a general register", s)
		}
		return nil
	}
	switch in.op {
	case "RET":
		return -1, nil
	case "JMP":
		return jump(true)
	case "JEQ":
		return jump(vm.fa == vm.fb)
	case "JNE":
		return jump(vm.fa != vm.fb)
	case "JLT":
		return jump(vm.fa < vm.fb)
	case "JLE":
		return jump(vm.fa <= vm.fb)
	case "JGT":
		return jump(vm.fa > vm.fb)
	case "JGE":
		return jump(vm.fa >= vm.fb)
	case "PREFETCHT0", "PREFETCHT1", "PREFETCHT2", "PREFETCHNTA":
		if err := need(1); err != nil {
			return 0, err
		}
		_, err := vm.addr(a[0]) // never faults: only the operand is checked
		return -2, err
	case "VZEROUPPER":
		for n := 0; n < 16; n++ {
			clear(vm.vec[n][16:])
		}
		return -2, nil
	case "MOVQ", "ADDQ", "SUBQ", "SHLQ", "SHRQ", "IMULQ", "ANDQ", "CMPQ", "TESTQ":
		if err := need(2); err != nil {
			return 0, err
		}
		src, err := vm.scalar(a[0])
		if err != nil {
			return 0, err
		}
		if in.op == "CMPQ" || in.op == "TESTQ" {
			// Go's operand order: CMPQ x, y; JLT jumps when x < y.
			y, err := vm.scalar(a[1])
			if err != nil {
				return 0, err
			}
			if in.op == "CMPQ" {
				vm.fa, vm.fb = src, y
			} else {
				vm.fa, vm.fb = src&y, 0
			}
			return -2, nil
		}
		if err := dstGPR(a[1]); err != nil {
			return 0, err
		}
		d := vm.gpr[a[1]]
		switch in.op {
		case "MOVQ":
			d = src
		case "ADDQ":
			d += src
		case "SUBQ":
			d -= src
		case "SHLQ":
			d <<= uint(src)
		case "SHRQ":
			d = int64(uint64(d) >> uint(src))
		case "IMULQ":
			d *= src
		case "ANDQ":
			d &= src
		}
		vm.gpr[a[1]] = d
		if in.op != "MOVQ" {
			vm.fa, vm.fb = d, 0
		}
		return -2, nil
	case "DECQ", "INCQ":
		if err := need(1); err != nil {
			return 0, err
		}
		if err := dstGPR(a[0]); err != nil {
			return 0, err
		}
		d := vm.gpr[a[0]] + 1
		if in.op == "DECQ" {
			d -= 2
		}
		vm.gpr[a[0]] = d
		vm.fa, vm.fb = d, 0
		return -2, nil
	case "LEAQ":
		if err := need(2); err != nil {
			return 0, err
		}
		ad, err := vm.addr(a[0])
		if err != nil {
			return 0, err
		}
		if err := dstGPR(a[1]); err != nil {
			return 0, err
		}
		vm.gpr[a[1]] = int64(ad)
		return -2, nil
	case "VMOVUPS", "VMOVDQU", "VMOVAPS", "VMOVDQU32":
		if err := need(2); err != nil {
			return 0, err
		}
		if n, w, ok := vecReg(a[1]); ok {
			v, err := vm.vecSrc(a[0], w)
			if err != nil {
				return 0, err
			}
			vm.setVec(n, v)
			return -2, nil
		}
		n, w, ok := vecReg(a[0])
		if !ok {
			return 0, fmt.Errorf("neither operand is a vector register")
		}
		ad, err := vm.addr(a[1])
		if err != nil {
			return 0, err
		}
		dst, err := vm.bytesAt(ad, w)
		if err != nil {
			return 0, err
		}
		copy(dst, vm.vec[n][:w])
		return -2, nil
	case "VBROADCASTSS", "VPBROADCASTD", "VCVTDQ2PS":
		if err := need(2); err != nil {
			return 0, err
		}
		n, w, ok := vecReg(a[1])
		if !ok {
			return 0, fmt.Errorf("destination %q", a[1])
		}
		cvt := in.op == "VCVTDQ2PS"
		sw := 4 // a broadcast reads one element
		if cvt {
			sw = w
		}
		src, err := vm.vecSrc(a[0], sw)
		if err != nil {
			return 0, err
		}
		var r [64]byte
		for i := 0; i < w/4; i++ {
			v := binary.LittleEndian.Uint32(src)
			if cvt {
				v = math.Float32bits(float32(i32(src, i)))
			}
			put32(r[:], i, v)
		}
		vm.setVec(n, r[:w])
		return -2, nil
	case "VFMADD231PS", "VADDPS", "VMULPS", "VPXOR", "VPXORD", "VXORPS", "VPADDD", "VPMADDWD", "VPDPWSSD":
		// Go's order: OP src2, src1, dst.
		if err := need(3); err != nil {
			return 0, err
		}
		n, w, ok := vecReg(a[2])
		if !ok {
			return 0, fmt.Errorf("destination %q", a[2])
		}
		s1, err := vm.vecSrc(a[1], w)
		if err != nil {
			return 0, err
		}
		s2, err := vm.vecSrc(a[0], w)
		if err != nil {
			return 0, err
		}
		d := vm.vec[n]
		var r [64]byte
		for i := 0; i < w/4; i++ {
			var v uint32
			switch in.op {
			case "VFMADD231PS":
				v = math.Float32bits(fma32(f32(s1, i), f32(s2, i), f32(d[:], i)))
			case "VADDPS":
				v = math.Float32bits(f32(s1, i) + f32(s2, i))
			case "VMULPS":
				v = math.Float32bits(f32(s1, i) * f32(s2, i))
			case "VPXOR", "VPXORD", "VXORPS":
				v = uint32(i32(s1, i) ^ i32(s2, i))
			case "VPADDD":
				v = uint32(i32(s1, i) + i32(s2, i))
			case "VPMADDWD":
				v = uint32(i16(s1, 2*i)*i16(s2, 2*i) + i16(s1, 2*i+1)*i16(s2, 2*i+1))
			case "VPDPWSSD":
				v = uint32(i32(d[:], i) + i16(s1, 2*i)*i16(s2, 2*i) + i16(s1, 2*i+1)*i16(s2, 2*i+1))
			}
			put32(r[:], i, v)
		}
		vm.setVec(n, r[:w])
		return -2, nil
	case "BYTES":
		return -2, vm.encoded(a)
	}
	return 0, fmt.Errorf("instruction not in the interpreter's subset")
}

// encoded executes an instruction the Go assembler does not know, written
// as BYTE directives ($n each): VDPBF16PS or VCVTNEPS2BF16 on 512-bit
// registers (EVEX, register operands, no mask).
func (vm *asmVM) encoded(args []string) error {
	code := make([]byte, len(args))
	for i, s := range args {
		v, err := strconv.ParseUint(strings.TrimPrefix(s, "$"), 0, 8)
		if err != nil {
			return fmt.Errorf("BYTE operand %q", s)
		}
		code[i] = byte(v)
	}
	op, reg, vvvv, rm, err := decodeEVEX(code)
	if err != nil {
		return err
	}
	d := vm.vec[reg]
	s2 := vm.vec[rm]
	var r [64]byte
	switch op {
	case 0x52: // VDPBF16PS zmm(reg) += pairs of zmm(vvvv) · zmm(rm)
		s1 := vm.vec[vvvv]
		bf := func(b []byte, i int) float32 {
			h := binary.LittleEndian.Uint16(b[2*i:])
			if h&0x7f80 == 0 {
				h &= 0x8000 // DAZ
			}
			return math.Float32frombits(uint32(h) << 16)
		}
		for i := 0; i < 16; i++ {
			acc := f32(d[:], i)
			acc += bf(s1[:], 2*i+1) * bf(s2[:], 2*i+1) // exact products, each sum rounded
			acc += bf(s1[:], 2*i) * bf(s2[:], 2*i)
			put32(r[:], i, math.Float32bits(acc))
		}
		vm.setVec(reg, r[:])
	case 0x72: // VCVTNEPS2BF16 ymm(reg) = bf16(zmm(rm))
		if vvvv != 0 {
			return fmt.Errorf("VCVTNEPS2BF16 with vvvv %d", vvvv)
		}
		for i := 0; i < 16; i++ {
			b := binary.LittleEndian.Uint32(s2[4*i:])
			var h uint16
			switch {
			case b&0x7fffffff > 0x7f800000: // NaN, made quiet
				h = uint16(b>>16) | 0x40
			case b&0x7f800000 == 0: // denormal or zero
				h = uint16(b>>16) & 0x8000
			default:
				h = uint16((b + 0x7fff + (b>>16)&1) >> 16)
			}
			binary.LittleEndian.PutUint16(r[2*i:], h)
		}
		vm.setVec(reg, r[:32])
	default:
		return fmt.Errorf("encoded opcode %#x not in the subset", op)
	}
	return nil
}

// decodeEVEX decodes a 512-bit, W0, F3-prefixed, 0F38-map EVEX
// instruction on register operands without masking: its opcode, ModRM.reg,
// the vvvv source and ModRM.rm, each with its high bits.
func decodeEVEX(c []byte) (op byte, reg, vvvv, rm int, err error) {
	if len(c) != 6 || c[0] != 0x62 {
		return 0, 0, 0, 0, fmt.Errorf("bytes % x: not a 6-byte EVEX instruction", c)
	}
	p0, p1, p2, modrm := c[1], c[2], c[3], c[5]
	bit := func(b byte, n int) int { return int(b>>n) & 1 }
	switch {
	case p0&0x0f != 0b0010:
		err = fmt.Errorf("bytes % x: not map 0F38", c)
	case p1&0x87 != 0b110:
		err = fmt.Errorf("bytes % x: not W0 with prefix F3", c)
	case p2&0xf7 != 0b01000000:
		err = fmt.Errorf("bytes % x: not 512 bits unmasked without broadcast", c)
	case modrm>>6 != 3:
		err = fmt.Errorf("bytes % x: memory operand", c)
	}
	if err != nil {
		return
	}
	reg = int(modrm>>3&7) | (1-bit(p0, 7))<<3 | (1-bit(p0, 4))<<4
	rm = int(modrm&7) | (1-bit(p0, 5))<<3 | (1-bit(p0, 6))<<4
	vvvv = int(^p1>>3&15) | (1-bit(p2, 3))<<4
	return c[4], reg, vvvv, rm, nil
}

// vmFamily builds the kernel family prefix ("sgemmKernelAVX512") of
// sgemm_rows_amd64.s, every row variant and form interpreted, as a
// microKernel named name of nr columns. An interpreter error is kept in
// *failed (the kernels may run on the worker pool's goroutines), the
// tile left as it was.
func vmFamily(t *testing.T, prefix, name string, nr int, failed *atomic.Value) *microKernel {
	t.Helper()
	prog := vmListing(t, "sgemm_rows_amd64.s")
	run := func(fn string, mr, k int, a, b, c *float32, ldc, accum int, bias *float32, next []uint64) {
		code := prog[fn]
		if code == nil {
			failed.CompareAndSwap(nil, fmt.Errorf("sgemm_rows_amd64.s: no function %s in the listing", fn))
			return
		}
		vm := &asmVM{}
		vm.args = []uint64{uint64(k),
			vmRegionOf(vm, unsafe.Slice(a, mr*k)),
			vmRegionOf(vm, unsafe.Slice(b, nr*k)),
			vmRegionOf(vm, unsafe.Slice(c, (mr-1)*ldc+nr)),
			uint64(ldc), uint64(accum)}
		if bias != nil {
			vm.args = append(vm.args, vmRegionOf(vm, unsafe.Slice(bias, nr)))
		}
		vm.args = append(vm.args, next...)
		if err := vm.run(code, 1<<22); err != nil {
			failed.CompareAndSwap(nil, fmt.Errorf("interpreting %s: %v", fn, err))
		}
	}
	var f rowKernels
	for r := 1; r <= 6; r++ {
		fn := fmt.Sprintf("%sR%d", prefix, r)
		f.fn[r-1] = func(k int, a, b, c *float32, ldc int, accum int) {
			run(fn, r, k, a, b, c, ldc, accum, nil, nil)
		}
		f.bias[r-1] = func(k int, a, b, c *float32, ldc int, accum int, bias *float32) {
			run(fn+"B", r, k, a, b, c, ldc, accum, bias, nil)
		}
		if r >= 5 {
			f.next[r-1] = func(k int, a, b, c *float32, ldc int, accum int, next uintptr) {
				run(fn+"N", r, k, a, b, c, ldc, accum, nil, []uint64{uint64(next)})
			}
			f.nextBias[r-1] = func(k int, a, b, c *float32, ldc int, accum int, bias *float32, next uintptr) {
				run(fn+"NB", r, k, a, b, c, ldc, accum, bias, []uint64{uint64(next)})
			}
		}
	}
	f.streamA = func(k int, a, b, c *float32, ldc int, accum int) {
		run(prefix+"R6A", 6, k, a, b, c, ldc, accum, nil, nil)
	}
	return f.family(name, nr, available[len(available)-1].simd)
}

// vmQKernel returns an interpreter-backed int8 microkernel (the
// checkQKernel form) dispatching r rows to function prefix+"R<r>" of
// int8_amd64.s.
func vmQKernel(t *testing.T, prefix string) qgemmFunc {
	prog := vmListing(t, "int8_amd64.s")
	return func(r, kp int, a *int16, lda int, b *int16, c *float32, ldc int, sa, sw, bias *float32, accum int) {
		t.Helper()
		name := fmt.Sprintf("%sR%d", prefix, r)
		fn := prog[name]
		if fn == nil {
			t.Fatalf("int8_amd64.s: no function %s in the listing", name)
		}
		vm := &asmVM{}
		var biasAddr uint64
		if bias != nil {
			biasAddr = vmRegionOf(vm, unsafe.Slice(bias, qnr))
		}
		vm.args = []uint64{uint64(kp),
			vmRegionOf(vm, unsafe.Slice(a, (r-1)*lda+2*kp)), uint64(lda),
			vmRegionOf(vm, unsafe.Slice(b, 2*qnr*kp)),
			vmRegionOf(vm, unsafe.Slice(c, (r-1)*ldc+qnr)), uint64(ldc),
			vmRegionOf(vm, unsafe.Slice(sa, r)), vmRegionOf(vm, unsafe.Slice(sw, qnr)), biasAddr,
			uint64(accum)}
		if err := vm.run(fn, 1<<22); err != nil {
			t.Fatalf("interpreting %s: %v", name, err)
		}
	}
}

// TestInterpretedAVX512 runs the AVX-512 float32 kernel family, which no
// development machine can execute, in the interpreter: every row variant
// and form through the start-up self-check (checkKernel: small integers,
// exact, store and accumulate, bias, several depths, nothing written past
// the tile), then as the current kernel through LinearPacked (pre-packed
// 32-wide panels, fused bias and epilogues, the quarter-panel prefetch
// forms, row variants, edges) and Sgemm on small shapes against the
// float64 reference.
func TestInterpretedAVX512(t *testing.T) {
	var failed atomic.Value
	k := vmFamily(t, "sgemmKernelAVX512", "avx512-interpreted", 32, &failed)
	if err := checkKernel(k); err != nil {
		t.Fatal(err)
	}
	if err, _ := failed.Load().(error); err != nil {
		t.Fatal(err)
	}
	saved, old := available, current.Load()
	available = append([]*microKernel{k}, available...)
	current.Store(k)
	defer func() { available = saved; current.Store(old) }()
	r := rand.New(rand.NewPCG(31, 32))
	for _, sz := range [][3]int{{1, 3, 2}, {50, 40, 77}, {33, 65, 300}, {13, 70, 17}, {24, 32, 9}} {
		m, n, kk := sz[0], sz[1], sz[2]
		x, w, bias := randSlice(r, m*kk), randSlice(r, n*kk), randSlice(r, n)
		pw := PackLinear(w, n, kk)
		for _, epi := range []Epilogue{EpiNone, EpiQuickGELU, EpiResidual} {
			y := randSlice(r, m*n)
			res := append([]float32(nil), y...)
			LinearPacked(y, x, pw, bias, m, epi)
			if err, _ := failed.Load().(error); err != nil {
				t.Fatalf("%v %v: %v", sz, epi, err)
			}
			want, mag := refLinear(x, w, bias, m, n, kk)
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
			checkClose(t, fmt.Sprintf("LinearPacked %v %v", sz, epi), y, want, mag, 2e-6*math.Sqrt(float64(kk)+1))
		}
	}
	for _, tc := range []struct {
		transA, transB bool
		m, n, k        int
	}{{false, false, 7, 33, 20}, {true, true, 19, 64, 5}, {false, true, 12, 97, 40}} {
		lda, ldb := tc.k, tc.n
		if tc.transA {
			lda = tc.m
		}
		if tc.transB {
			ldb = tc.k
		}
		a, b, c := randSlice(r, tc.m*tc.k), randSlice(r, tc.k*tc.n), randSlice(r, tc.m*tc.n)
		want, mag := refGemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, 0.5, a, lda, b, ldb, 0.25, c, tc.n)
		Sgemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, 0.5, a, lda, b, ldb, 0.25, c, tc.n)
		if err, _ := failed.Load().(error); err != nil {
			t.Fatal(err)
		}
		checkClose(t, fmt.Sprintf("Sgemm %+v", tc), c, want, mag, 2e-6*math.Sqrt(float64(tc.k)+1))
	}
}

// TestInterpretedVNNI runs the AVX512_VNNI int8 microkernels (1 to 6 rows)
// in the interpreter through the start-up check of the int8 kernels
// (checkQKernel: exact integer sums scaled back, bias and accumulate
// forms).
func TestInterpretedVNNI(t *testing.T) {
	if err := checkQKernel("vnni (interpreted)", vmQKernel(t, "qgemmVNNI")); err != nil {
		t.Fatal(err)
	}
}

// TestInterpreterCatchesErrors checks that the interpreter fails on what
// a broken kernel would do: a store outside the buffers, a loop that
// does not end, an instruction outside its subset.
func TestInterpreterCatchesErrors(t *testing.T) {
	buf := make([]float32, 8)
	for what, src := range map[string]string{
		"outside": "\t0x0000 00000 (x.s:1)\tMOVQ\tc+8(FP), DX\n\t0x0004 00004 (x.s:2)\tVMOVUPS\tY0, 4(DX)\n\t0x0008 00008 (x.s:3)\tRET\t\n",
		"endless": "\t0x0000 00000 (x.s:1)\tJMP\t0\n",
		"unknown": "\t0x0000 00000 (x.s:1)\tVPERMPS\tY0, Y1, Y2\n",
	} {
		prog := parseListing("kernels.f STEXT nosplit\n" + src)["f"]
		vm := &asmVM{}
		vm.args = []uint64{vmRegionOf(vm, buf)}
		if err := vm.run(prog, 1000); err == nil {
			t.Errorf("%s: no error", what)
		} else {
			t.Logf("%s: %v", what, err)
		}
	}
}
