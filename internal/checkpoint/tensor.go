// Package checkpoint reads CLIP checkpoints in the formats people publish
// them in, without executing code: safetensors (open_clip and Hugging Face,
// memory-mapped), PyTorch zip pickles (torch.save state dicts, decoded by a
// restricted pickle machine that only knows the tensor-rebuild globals) and
// OpenAI's TorchScript archives, and Hugging Face CLIPModel directories.
//
// Open sniffs the format and returns the state dict under the reference
// (openai/CLIP model.state_dict()) names; Validate compares it with the
// shapes a model expects; WriteSafetensors writes tensors back out. A
// loader that copies tensors out of a mapped file one by one calls
// File.Release on each, so that the file does not stay resident.
package checkpoint

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"
)

// DType is a tensor element type, spelled as in the safetensors header.
type DType string

// The element types goclip understands.
const (
	F64  DType = "F64"
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	I64  DType = "I64"
	I32  DType = "I32"
	I16  DType = "I16"
	I8   DType = "I8"
	U8   DType = "U8"
	Bool DType = "BOOL"
)

// Size returns the size in bytes of one element, or 0 for an unknown type.
func (d DType) Size() int {
	switch d {
	case F64, I64:
		return 8
	case F32, I32:
		return 4
	case F16, BF16, I16:
		return 2
	case I8, U8, Bool:
		return 1
	}
	return 0
}

// Tensor is one named tensor of a checkpoint. Its bytes are little-endian
// and row-major; they may be memory-mapped from the file (see File.Close),
// so callers must treat Data as read-only.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte
}

// FromFloat32 returns an F32 tensor holding a little-endian copy of v,
// with its own copy of shape.
func FromFloat32(name string, shape []int, v []float32) *Tensor {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return &Tensor{Name: name, DType: F32, Shape: append([]int(nil), shape...), Data: b}
}

// NumElements returns the product of the shape (1 for a scalar).
func (t *Tensor) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Float32 returns the tensor's values as float32, converting F16, BF16, F64
// and integer types. The result is always a fresh slice the caller owns.
func (t *Tensor) Float32() ([]float32, error) {
	n := t.NumElements()
	if len(t.Data) != n*t.DType.Size() || t.DType.Size() == 0 {
		return nil, t.float32Err()
	}
	out := make([]float32, n)
	if err := t.Float32Into(out); err != nil {
		return nil, err
	}
	return out, nil
}

// float32Err explains why t cannot be converted to float32.
func (t *Tensor) float32Err() error {
	switch t.DType {
	case F32, F16, BF16, F64, I64, I32, I16, I8, U8, Bool:
		return fmt.Errorf("tensor %q: %d bytes for %d elements of %s", t.Name, len(t.Data), t.NumElements(), t.DType)
	}
	return fmt.Errorf("tensor %q: cannot convert %s to float32", t.Name, t.DType)
}

// Float32Into writes the tensor's values, converted as by Float32, into
// dst, which must hold exactly NumElements values. It allocates nothing,
// so a loader can convert tensor after tensor into one reused buffer.
func (t *Tensor) Float32Into(dst []float32) error {
	n := t.NumElements()
	if len(t.Data) != n*t.DType.Size() || t.DType.Size() == 0 {
		return t.float32Err()
	}
	if len(dst) != n {
		return fmt.Errorf("tensor %q: %d elements into a buffer of %d", t.Name, n, len(dst))
	}
	out, b := dst, t.Data
	switch t.DType {
	case F32:
		if littleEndianHost {
			if n > 0 {
				copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(out))), 4*n), b)
			}
			return nil
		}
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	case F16:
		for i := range out {
			out[i] = HalfToFloat32(binary.LittleEndian.Uint16(b[2*i:]))
		}
	case BF16:
		for i := range out {
			out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[2*i:])) << 16)
		}
	case F64:
		for i := range out {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:])))
		}
	case I64:
		for i := range out {
			out[i] = float32(int64(binary.LittleEndian.Uint64(b[8*i:])))
		}
	case I32:
		for i := range out {
			out[i] = float32(int32(binary.LittleEndian.Uint32(b[4*i:])))
		}
	case I16:
		for i := range out {
			out[i] = float32(int16(binary.LittleEndian.Uint16(b[2*i:])))
		}
	case I8:
		for i := range out {
			out[i] = float32(int8(b[i]))
		}
	case U8, Bool:
		for i := range out {
			out[i] = float32(b[i])
		}
	default:
		return t.float32Err()
	}
	return nil
}

// Flat returns elements [lo, hi) of t, counted in row-major order, as a
// 1-D tensor whose Data aliases t's (so Float32Into converts, and
// File.Release releases, just that part). It returns an error when the
// range is outside the tensor or t's bytes do not match its shape.
func (t *Tensor) Flat(lo, hi int) (*Tensor, error) {
	n, es := t.NumElements(), t.DType.Size()
	if es == 0 || len(t.Data) != n*es {
		return nil, t.float32Err()
	}
	if lo < 0 || hi < lo || hi > n {
		return nil, fmt.Errorf("tensor %q: elements [%d, %d) out of range for %d", t.Name, lo, hi, n)
	}
	return &Tensor{Name: t.Name, DType: t.DType, Shape: []int{hi - lo}, Data: t.Data[lo*es : hi*es : hi*es]}, nil
}

// Int64 returns the values of an integer tensor as int64.
func (t *Tensor) Int64() ([]int64, error) {
	n := t.NumElements()
	if len(t.Data) != n*t.DType.Size() {
		return nil, fmt.Errorf("tensor %q: %d bytes for %d elements of %s", t.Name, len(t.Data), n, t.DType)
	}
	out := make([]int64, n)
	b := t.Data
	switch t.DType {
	case I64:
		for i := range out {
			out[i] = int64(binary.LittleEndian.Uint64(b[8*i:]))
		}
	case I32:
		for i := range out {
			out[i] = int64(int32(binary.LittleEndian.Uint32(b[4*i:])))
		}
	case I16:
		for i := range out {
			out[i] = int64(int16(binary.LittleEndian.Uint16(b[2*i:])))
		}
	case U8, Bool:
		for i := range out {
			out[i] = int64(b[i])
		}
	case I8:
		for i := range out {
			out[i] = int64(int8(b[i]))
		}
	default:
		return nil, fmt.Errorf("tensor %q: cannot convert %s to int64", t.Name, t.DType)
	}
	return out, nil
}

// littleEndianHost reports whether the machine stores numbers little-endian,
// the byte order of every checkpoint format, so F32 bytes can be viewed in
// place.
var littleEndianHost = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// Float32View returns the values of an F32 tensor without copying them: the
// slice aliases Data (and so possibly the memory-mapped file, valid until
// File.Close). It reports false when no view is possible: another dtype, a
// big-endian host, a byte count that does not match the shape, or data that
// is not 4-byte aligned in memory (a safetensors file whose data section or
// tensor offsets are not aligned); Float32 then gives a converted copy. The
// view must not be modified.
func (t *Tensor) Float32View() ([]float32, bool) {
	n := t.NumElements()
	if t.DType != F32 || !littleEndianHost || len(t.Data) != 4*n {
		return nil, false
	}
	if n == 0 {
		return []float32{}, true
	}
	p := unsafe.Pointer(unsafe.SliceData(t.Data))
	if uintptr(p)%4 != 0 {
		return nil, false
	}
	return unsafe.Slice((*float32)(p), n), true
}

// AsFloat32 returns the tensor's values as float32: the zero-copy view of
// Float32View where possible, otherwise a converted copy. Treat the result
// as read-only either way.
func (t *Tensor) AsFloat32() ([]float32, error) {
	if v, ok := t.Float32View(); ok {
		return v, nil
	}
	return t.Float32()
}

// HalfToFloat32 converts an IEEE 754 binary16 value to float32 exactly.
func HalfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0 && mant == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal
		e := uint32(127 - 15 + 1)
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		mant &= 0x3ff
		return math.Float32frombits(sign | e<<23 | mant<<13)
	case exp == 0x1f:
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}
