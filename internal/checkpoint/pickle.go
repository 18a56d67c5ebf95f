package checkpoint

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// This file is a restricted pickle virtual machine: it decodes the pickle
// programs that torch.save and torch.jit.save write (protocols 0 to 5) into
// inert Go values, and never runs code. The only globals it accepts are the
// handful PyTorch uses to rebuild tensors (and, for TorchScript archives,
// the __torch__.* module classes, which become plain attribute bags); any
// other global is refused by name before anything happens with it.

// Python values as the VM represents them: nil (None), bool, int64,
// *pyBigInt, float64, string, []byte, pyTuple, *pyList, *pyDict, *pyGlobal,
// *pyObject, *pyStorage and *Tensor.
type (
	pyTuple []any
	pyList  struct{ items []any }
	pyDict  struct {
		keys, vals []any
		index      map[string]int
	}
	// pyBigInt is an integer that does not fit in int64 (little-endian
	// two's complement bytes); checkpoints only carry it in metadata.
	pyBigInt struct{ b []byte }
	// pyObject is an instance of a TorchScript class (__torch__.*): its
	// pickled state is kept as data, nothing is executed.
	pyObject struct {
		class string
		args  any
		state any
	}
	pyStorage struct {
		dtype DType
		key   string
		numel int64
		data  []byte
	}
	pyGlobal struct {
		module, name string
		kind         globalKind
		dtype        DType // for storage classes
	}
)

type globalKind int

const (
	gOrderedDict globalKind = iota + 1
	gRebuildTensorV2
	gRebuildTensor
	gRebuildParameter
	gRebuildParameterWithState
	gStorage
	gScriptClass // __torch__.* (TorchScript only)
	gIdentity    // torch.jit._pickle list builders and type tags (TorchScript only)
	gDevice      // torch.device (TorchScript only)
)

var storageDTypes = map[string]DType{
	"FloatStorage":    F32,
	"DoubleStorage":   F64,
	"HalfStorage":     F16,
	"BFloat16Storage": BF16,
	"LongStorage":     I64,
	"IntStorage":      I32,
	"ShortStorage":    I16,
	"CharStorage":     I8,
	"ByteStorage":     U8,
	"BoolStorage":     Bool,
}

func newDict() *pyDict { return &pyDict{index: map[string]int{}} }

// get returns the value stored under a string key.
func (d *pyDict) get(k string) (any, bool) {
	i, ok := d.index["s"+k]
	if !ok {
		return nil, false
	}
	return d.vals[i], true
}

func (d *pyDict) set(k, v any) error {
	h, ok := hashKey(k, 0)
	if !ok {
		return fmt.Errorf("unhashable dictionary key of type %s", typeName(k))
	}
	if i, ok := d.index[h]; ok {
		d.vals[i] = v
		return nil
	}
	d.index[h] = len(d.keys)
	d.keys = append(d.keys, k)
	d.vals = append(d.vals, v)
	return nil
}

// hashKey gives a canonical string for a hashable Python value.
func hashKey(v any, depth int) (string, bool) {
	switch v := v.(type) {
	case nil:
		return "n", true
	case bool:
		if v {
			return "i1", true // True == 1 in Python
		}
		return "i0", true
	case int64:
		return "i" + strconv.FormatInt(v, 10), true
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1<<62 {
			return "i" + strconv.FormatInt(int64(v), 10), true
		}
		return "f" + strconv.FormatFloat(v, 'g', -1, 64), true
	case string:
		return "s" + v, true
	case []byte:
		return "b" + string(v), true
	case *pyBigInt:
		return "B" + string(v.b), true
	case pyTuple:
		if depth > 16 {
			return "", false
		}
		var b strings.Builder
		b.WriteString("t(")
		for _, e := range v {
			h, ok := hashKey(e, depth+1)
			if !ok {
				return "", false
			}
			b.WriteString(strconv.Itoa(len(h)))
			b.WriteByte(':')
			b.WriteString(h)
		}
		b.WriteByte(')')
		return b.String(), true
	case *pyGlobal:
		return "g" + v.module + "\n" + v.name, true
	}
	return "", false
}

func typeName(v any) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case bool:
		return "bool"
	case int64, *pyBigInt:
		return "int"
	case float64:
		return "float"
	case string:
		return "str"
	case []byte:
		return "bytes"
	case pyTuple:
		return "tuple"
	case *pyList:
		return "list"
	case *pyDict:
		return "dict"
	case *pyGlobal:
		return v.module + "." + v.name
	case *pyObject:
		return v.class
	case *pyStorage:
		return "storage"
	case *Tensor:
		return "tensor"
	}
	return fmt.Sprintf("%T", v)
}

// unpickler runs one pickle program.
type unpickler struct {
	name        string // "<file> (<entry>)" for errors
	data        []byte
	pos         int
	stack       []any
	meta        [][]any
	memo        map[int64]any
	torchscript bool
	// loadStorage returns the bytes of the storage with the given key.
	loadStorage func(key string) ([]byte, error)
	storages    map[string]*pyStorage
	copyBudget  int64 // bytes left for materialising strided tensors
}

// maxStrided bounds the bytes the VM may copy to make strided tensors
// contiguous, beyond twice the bytes of the storages loaded.
const maxStrided = 256 << 20

func newUnpickler(name string, data []byte, torchscript bool, loadStorage func(string) ([]byte, error)) *unpickler {
	return &unpickler{
		name: name, data: data, memo: map[int64]any{}, torchscript: torchscript,
		loadStorage: loadStorage, storages: map[string]*pyStorage{}, copyBudget: maxStrided,
	}
}

type pickleError struct {
	name string
	pos  int
	msg  string
}

func (e *pickleError) Error() string {
	return fmt.Sprintf("%s: pickle byte %d: %s", e.name, e.pos, e.msg)
}

func (u *unpickler) errf(format string, args ...any) error {
	return &pickleError{u.name, u.pos, fmt.Sprintf(format, args...)}
}

// tensorErrf is errf naming the tensor being rebuilt, where known.
func (u *unpickler) tensorErrf(format string, args ...any) error {
	return &pickleError{u.name, u.pos, fmt.Sprintf(format, args...) + u.near()}
}

// near returns ` (tensor "key")` when the value being built sits right
// after a string key (a state-dict key or a module attribute name), so that
// errors about a tensor can name it; otherwise "".
func (u *unpickler) near() string {
	levels := [][]any{u.stack}
	for i := len(u.meta) - 1; i >= 0 && len(levels) < 3; i-- {
		levels = append(levels, u.meta[i])
	}
	for _, l := range levels {
		for j := len(l) - 1; j >= 0 && j >= len(l)-2; j-- {
			if s, ok := l[j].(string); ok {
				return fmt.Sprintf(" (tensor %q)", s)
			}
		}
	}
	return ""
}

func (u *unpickler) need(n int) ([]byte, error) {
	if n < 0 || n > len(u.data)-u.pos {
		return nil, u.errf("truncated pickle: need %d more bytes, %d left", n, len(u.data)-u.pos)
	}
	b := u.data[u.pos : u.pos+n]
	u.pos += n
	return b, nil
}

func (u *unpickler) readLine() (string, error) {
	i := bytes.IndexByte(u.data[u.pos:], '\n')
	if i < 0 {
		return "", u.errf("truncated pickle: unterminated text argument")
	}
	s := string(u.data[u.pos : u.pos+i])
	u.pos += i + 1
	return s, nil
}

func (u *unpickler) push(v any) { u.stack = append(u.stack, v) }

func (u *unpickler) pop() (any, error) {
	if len(u.stack) == 0 {
		return nil, u.errf("stack underflow")
	}
	v := u.stack[len(u.stack)-1]
	u.stack = u.stack[:len(u.stack)-1]
	return v, nil
}

func (u *unpickler) top() (any, error) {
	if len(u.stack) == 0 {
		return nil, u.errf("stack underflow")
	}
	return u.stack[len(u.stack)-1], nil
}

func (u *unpickler) popMark() ([]any, error) {
	if len(u.meta) == 0 {
		return nil, u.errf("MARK expected but not found")
	}
	items := u.stack
	u.stack = u.meta[len(u.meta)-1]
	u.meta = u.meta[:len(u.meta)-1]
	return items, nil
}

// run executes the program up to STOP and returns the result.
func (u *unpickler) run() (any, error) {
	for {
		if u.pos >= len(u.data) {
			return nil, u.errf("truncated pickle: no STOP opcode")
		}
		op := u.data[u.pos]
		u.pos++
		switch op {
		case '.': // STOP
			v, err := u.pop()
			if err != nil {
				return nil, err
			}
			return v, nil
		case 0x80: // PROTO
			b, err := u.need(1)
			if err != nil {
				return nil, err
			}
			if b[0] > 5 {
				return nil, u.errf("unsupported pickle protocol %d", b[0])
			}
		case 0x95: // FRAME
			if _, err := u.need(8); err != nil {
				return nil, err
			}
		case '(': // MARK
			u.meta = append(u.meta, u.stack)
			u.stack = nil
		case '0': // POP
			if len(u.stack) == 0 {
				if _, err := u.popMark(); err != nil { // CPython pops a mark here
					return nil, err
				}
			} else if _, err := u.pop(); err != nil {
				return nil, err
			}
		case '1': // POP_MARK
			if _, err := u.popMark(); err != nil {
				return nil, err
			}
		case '2': // DUP
			v, err := u.top()
			if err != nil {
				return nil, err
			}
			u.push(v)
		case 'N':
			u.push(nil)
		case 0x88:
			u.push(true)
		case 0x89:
			u.push(false)
		case 'I': // INT (text)
			s, err := u.readLine()
			if err != nil {
				return nil, err
			}
			switch s {
			case "01":
				u.push(true)
			case "00":
				u.push(false)
			default:
				v, err := u.parseInt(s)
				if err != nil {
					return nil, err
				}
				u.push(v)
			}
		case 'L': // LONG (text)
			s, err := u.readLine()
			if err != nil {
				return nil, err
			}
			v, err := u.parseInt(strings.TrimSuffix(s, "L"))
			if err != nil {
				return nil, err
			}
			u.push(v)
		case 'J': // BININT
			b, err := u.need(4)
			if err != nil {
				return nil, err
			}
			u.push(int64(int32(binary.LittleEndian.Uint32(b))))
		case 'K': // BININT1
			b, err := u.need(1)
			if err != nil {
				return nil, err
			}
			u.push(int64(b[0]))
		case 'M': // BININT2
			b, err := u.need(2)
			if err != nil {
				return nil, err
			}
			u.push(int64(binary.LittleEndian.Uint16(b)))
		case 0x8a, 0x8b: // LONG1, LONG4
			var n int
			if op == 0x8a {
				b, err := u.need(1)
				if err != nil {
					return nil, err
				}
				n = int(b[0])
			} else {
				b, err := u.need(4)
				if err != nil {
					return nil, err
				}
				l := int32(binary.LittleEndian.Uint32(b))
				if l < 0 {
					return nil, u.errf("LONG4 with negative length %d", l)
				}
				n = int(l)
			}
			b, err := u.need(n)
			if err != nil {
				return nil, err
			}
			u.push(decodeLong(b))
		case 'F': // FLOAT (text)
			s, err := u.readLine()
			if err != nil {
				return nil, err
			}
			f, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return nil, u.errf("bad FLOAT %q", s)
			}
			u.push(f)
		case 'G': // BINFLOAT
			b, err := u.need(8)
			if err != nil {
				return nil, err
			}
			u.push(math.Float64frombits(binary.BigEndian.Uint64(b)))
		case 'S': // STRING (text, quoted)
			s, err := u.readLine()
			if err != nil {
				return nil, err
			}
			if len(s) < 2 || (s[0] != '\'' && s[0] != '"') || s[len(s)-1] != s[0] {
				return nil, u.errf("bad STRING argument")
			}
			u.push(s[1 : len(s)-1])
		case 'V': // UNICODE (text)
			s, err := u.readLine()
			if err != nil {
				return nil, err
			}
			u.push(s)
		case 'T', 'X', 'B': // BINSTRING, BINUNICODE, BINBYTES: 4-byte length
			b, err := u.need(4)
			if err != nil {
				return nil, err
			}
			s, err := u.need(int(binary.LittleEndian.Uint32(b)))
			if err != nil {
				return nil, err
			}
			if op == 'B' {
				u.push(append([]byte(nil), s...))
			} else {
				u.push(string(s))
			}
		case 'U', 0x8c, 'C': // SHORT_BINSTRING, SHORT_BINUNICODE, SHORT_BINBYTES
			b, err := u.need(1)
			if err != nil {
				return nil, err
			}
			s, err := u.need(int(b[0]))
			if err != nil {
				return nil, err
			}
			if op == 'C' {
				u.push(append([]byte(nil), s...))
			} else {
				u.push(string(s))
			}
		case 0x8d, 0x8e, 0x96: // BINUNICODE8, BINBYTES8, BYTEARRAY8
			b, err := u.need(8)
			if err != nil {
				return nil, err
			}
			n := binary.LittleEndian.Uint64(b)
			if n > uint64(len(u.data)-u.pos) {
				return nil, u.errf("truncated pickle: string of %d bytes, %d left", n, len(u.data)-u.pos)
			}
			s, _ := u.need(int(n))
			if op == 0x8d {
				u.push(string(s))
			} else {
				u.push(append([]byte(nil), s...))
			}
		case '}':
			u.push(newDict())
		case ']':
			u.push(&pyList{})
		case ')':
			u.push(pyTuple{})
		case 0x8f: // EMPTY_SET
			u.push(&pyList{})
		case 'd', 'l', 't', 0x91: // DICT, LIST, TUPLE, FROZENSET
			items, err := u.popMark()
			if err != nil {
				return nil, err
			}
			switch op {
			case 'd':
				d, err := u.dictFrom(items)
				if err != nil {
					return nil, err
				}
				u.push(d)
			case 'l', 0x91:
				u.push(&pyList{items: items})
			default:
				u.push(pyTuple(items))
			}
		case 0x85, 0x86, 0x87: // TUPLE1..3
			n := int(op - 0x84)
			if len(u.stack) < n {
				return nil, u.errf("stack underflow")
			}
			t := append(pyTuple(nil), u.stack[len(u.stack)-n:]...)
			u.stack = u.stack[:len(u.stack)-n]
			u.push(t)
		case 's': // SETITEM
			v, err := u.pop()
			if err != nil {
				return nil, err
			}
			k, err := u.pop()
			if err != nil {
				return nil, err
			}
			if err := u.setItems([]any{k, v}); err != nil {
				return nil, err
			}
		case 'u': // SETITEMS
			items, err := u.popMark()
			if err != nil {
				return nil, err
			}
			if err := u.setItems(items); err != nil {
				return nil, err
			}
		case 'a': // APPEND
			v, err := u.pop()
			if err != nil {
				return nil, err
			}
			if err := u.appendItems([]any{v}); err != nil {
				return nil, err
			}
		case 'e', 0x90: // APPENDS, ADDITEMS
			items, err := u.popMark()
			if err != nil {
				return nil, err
			}
			if err := u.appendItems(items); err != nil {
				return nil, err
			}
		case 'g', 'h', 'j': // GET, BINGET, LONG_BINGET
			idx, err := u.memoIndex(op)
			if err != nil {
				return nil, err
			}
			v, ok := u.memo[idx]
			if !ok {
				return nil, u.errf("memo entry %d was never stored", idx)
			}
			u.push(v)
		case 'p', 'q', 'r': // PUT, BINPUT, LONG_BINPUT
			idx, err := u.memoIndex(op)
			if err != nil {
				return nil, err
			}
			v, err := u.top()
			if err != nil {
				return nil, err
			}
			u.memo[idx] = v
		case 0x94: // MEMOIZE
			v, err := u.top()
			if err != nil {
				return nil, err
			}
			u.memo[int64(len(u.memo))] = v
		case 'c': // GLOBAL
			mod, err := u.readLine()
			if err != nil {
				return nil, err
			}
			name, err := u.readLine()
			if err != nil {
				return nil, err
			}
			g, err := u.global(mod, name)
			if err != nil {
				return nil, err
			}
			u.push(g)
		case 0x93: // STACK_GLOBAL
			name, err := u.pop()
			if err != nil {
				return nil, err
			}
			mod, err := u.pop()
			if err != nil {
				return nil, err
			}
			ms, ok1 := mod.(string)
			ns, ok2 := name.(string)
			if !ok1 || !ok2 {
				return nil, u.errf("STACK_GLOBAL needs two strings, got %s and %s", typeName(mod), typeName(name))
			}
			g, err := u.global(ms, ns)
			if err != nil {
				return nil, err
			}
			u.push(g)
		case 'R': // REDUCE
			args, err := u.pop()
			if err != nil {
				return nil, err
			}
			fn, err := u.pop()
			if err != nil {
				return nil, err
			}
			v, err := u.reduce(fn, args)
			if err != nil {
				return nil, err
			}
			u.push(v)
		case 0x81, 0x92: // NEWOBJ, NEWOBJ_EX
			if op == 0x92 {
				if _, err := u.pop(); err != nil { // kwargs
					return nil, err
				}
			}
			args, err := u.pop()
			if err != nil {
				return nil, err
			}
			cls, err := u.pop()
			if err != nil {
				return nil, err
			}
			v, err := u.newObj(cls, args)
			if err != nil {
				return nil, err
			}
			u.push(v)
		case 'b': // BUILD
			state, err := u.pop()
			if err != nil {
				return nil, err
			}
			obj, err := u.top()
			if err != nil {
				return nil, err
			}
			switch o := obj.(type) {
			case *pyObject:
				o.state = state
			case *pyDict, *Tensor:
				// OrderedDict._metadata of a state dict, parameter state:
				// attributes a state dict does not need.
			default:
				return nil, u.errf("BUILD on a %s is not supported", typeName(obj))
			}
		case 'Q': // BINPERSID
			pid, err := u.pop()
			if err != nil {
				return nil, err
			}
			v, err := u.persistentLoad(pid)
			if err != nil {
				return nil, err
			}
			u.push(v)
		case 'P': // PERSID
			s, err := u.readLine()
			if err != nil {
				return nil, err
			}
			v, err := u.persistentLoad(s)
			if err != nil {
				return nil, err
			}
			u.push(v)
		default:
			return nil, u.errf("unsupported pickle opcode 0x%02x", op)
		}
	}
}

func (u *unpickler) parseInt(s string) (any, error) {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		if len(s) > 0 && len(s) < 4096 && strings.Trim(s, "-0123456789") == "" {
			return &pyBigInt{b: []byte(s)}, nil
		}
		return nil, u.errf("bad integer %q", s)
	}
	return v, nil
}

// decodeLong decodes a little-endian two's complement integer.
func decodeLong(b []byte) any {
	if len(b) == 0 {
		return int64(0)
	}
	if len(b) > 8 {
		return &pyBigInt{b: append([]byte(nil), b...)}
	}
	var v uint64
	for i := len(b) - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	if shift := 64 - 8*uint(len(b)); shift > 0 {
		return int64(v<<shift) >> shift // sign-extend
	}
	return int64(v)
}

func (u *unpickler) memoIndex(op byte) (int64, error) {
	switch op {
	case 'h', 'q':
		b, err := u.need(1)
		if err != nil {
			return 0, err
		}
		return int64(b[0]), nil
	case 'j', 'r':
		b, err := u.need(4)
		if err != nil {
			return 0, err
		}
		return int64(binary.LittleEndian.Uint32(b)), nil
	}
	s, err := u.readLine()
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, u.errf("bad memo index %q", s)
	}
	return v, nil
}

func (u *unpickler) dictFrom(items []any) (*pyDict, error) {
	if len(items)%2 != 0 {
		return nil, u.errf("odd number of items for a dictionary")
	}
	d := newDict()
	for i := 0; i < len(items); i += 2 {
		if err := d.set(items[i], items[i+1]); err != nil {
			return nil, u.errf("%v", err)
		}
	}
	return d, nil
}

func (u *unpickler) setItems(items []any) error {
	if len(items)%2 != 0 {
		return u.errf("odd number of items for SETITEMS")
	}
	t, err := u.top()
	if err != nil {
		return err
	}
	d, ok := t.(*pyDict)
	if !ok {
		return u.errf("SETITEM on a %s, not a dict", typeName(t))
	}
	for i := 0; i < len(items); i += 2 {
		if err := d.set(items[i], items[i+1]); err != nil {
			return u.errf("%v", err)
		}
	}
	return nil
}

func (u *unpickler) appendItems(items []any) error {
	t, err := u.top()
	if err != nil {
		return err
	}
	l, ok := t.(*pyList)
	if !ok {
		return u.errf("APPEND on a %s, not a list", typeName(t))
	}
	l.items = append(l.items, items...)
	return nil
}

// global resolves a GLOBAL against the allow-list. Anything else is refused
// here, before it could be called.
func (u *unpickler) global(mod, name string) (*pyGlobal, error) {
	g := &pyGlobal{module: mod, name: name}
	switch {
	case mod == "collections" && name == "OrderedDict":
		g.kind = gOrderedDict
	case mod == "torch._utils" && name == "_rebuild_tensor_v2":
		g.kind = gRebuildTensorV2
	case mod == "torch._utils" && name == "_rebuild_tensor":
		g.kind = gRebuildTensor
	case mod == "torch._utils" && name == "_rebuild_parameter":
		g.kind = gRebuildParameter
	case mod == "torch._utils" && name == "_rebuild_parameter_with_state":
		g.kind = gRebuildParameterWithState
	case mod == "torch" && storageDTypes[name] != "":
		g.kind, g.dtype = gStorage, storageDTypes[name]
	case u.torchscript && (mod == "__torch__" || strings.HasPrefix(mod, "__torch__.")):
		g.kind = gScriptClass
	case u.torchscript && mod == "torch.jit._pickle" && (strings.HasPrefix(name, "build_") && strings.HasSuffix(name, "list") || name == "restore_type_tag"):
		g.kind = gIdentity
	case u.torchscript && mod == "torch" && name == "device":
		g.kind = gDevice
	default:
		return nil, u.errf("refusing to unpickle global %s.%s: only tensor-rebuild globals are allowed", mod, name)
	}
	return g, nil
}

func (u *unpickler) reduce(fn, args any) (any, error) {
	g, ok := fn.(*pyGlobal)
	if !ok {
		return nil, u.errf("REDUCE calls a %s, not an allowed global", typeName(fn))
	}
	a, ok := args.(pyTuple)
	if !ok {
		return nil, u.errf("REDUCE of %s.%s: arguments are a %s, not a tuple", g.module, g.name, typeName(args))
	}
	switch g.kind {
	case gOrderedDict:
		d := newDict()
		if len(a) == 0 {
			return d, nil
		}
		if len(a) > 1 {
			return nil, u.errf("OrderedDict takes at most one argument")
		}
		var pairs []any
		switch p := a[0].(type) {
		case *pyList:
			pairs = p.items
		case pyTuple:
			pairs = p
		case *pyDict:
			return p, nil
		default:
			return nil, u.errf("OrderedDict from a %s", typeName(a[0]))
		}
		for _, p := range pairs {
			kv, ok := p.(pyTuple)
			if !ok || len(kv) != 2 {
				return nil, u.errf("OrderedDict item is not a pair")
			}
			if err := d.set(kv[0], kv[1]); err != nil {
				return nil, u.errf("%v", err)
			}
		}
		return d, nil
	case gRebuildTensorV2, gRebuildTensor:
		if len(a) < 4 {
			return nil, u.errf("%s takes at least 4 arguments, got %d", g.name, len(a))
		}
		return u.rebuildTensor(a[0], a[1], a[2], a[3])
	case gRebuildParameter, gRebuildParameterWithState:
		if len(a) < 1 {
			return nil, u.errf("%s without arguments", g.name)
		}
		if _, ok := a[0].(*Tensor); !ok {
			return nil, u.errf("%s of a %s, not a tensor", g.name, typeName(a[0]))
		}
		return a[0], nil
	case gIdentity:
		if len(a) < 1 {
			return nil, u.errf("%s.%s without arguments", g.module, g.name)
		}
		return a[0], nil
	case gDevice:
		if len(a) < 1 {
			return nil, u.errf("torch.device without arguments")
		}
		return a[0], nil
	case gScriptClass: // TorchScript enums: kept as data
		return &pyObject{class: g.module + "." + g.name, args: a}, nil
	}
	return nil, u.errf("%s.%s cannot be called", g.module, g.name)
}

func (u *unpickler) newObj(cls, args any) (any, error) {
	g, ok := cls.(*pyGlobal)
	if !ok {
		return nil, u.errf("NEWOBJ of a %s, not a class", typeName(cls))
	}
	switch g.kind {
	case gScriptClass:
		return &pyObject{class: g.module + "." + g.name, args: args}, nil
	case gOrderedDict:
		return newDict(), nil
	}
	return nil, u.errf("NEWOBJ of %s.%s is not supported", g.module, g.name)
}

// persistentLoad resolves a torch storage reference:
// ('storage', torch.<Type>Storage, key, location, numel).
func (u *unpickler) persistentLoad(pid any) (any, error) {
	t, ok := pid.(pyTuple)
	if !ok || len(t) < 5 {
		return nil, u.tensorErrf("persistent id is a %s, not a ('storage', type, key, location, size) tuple", typeName(pid))
	}
	if s, _ := t[0].(string); s != "storage" {
		return nil, u.tensorErrf("persistent id of unknown kind %q", t[0])
	}
	g, ok := t[1].(*pyGlobal)
	if !ok || g.kind != gStorage {
		return nil, u.tensorErrf("persistent id names storage type %s, not a torch storage class", typeName(t[1]))
	}
	key, ok := t[2].(string)
	if !ok {
		return nil, u.tensorErrf("storage key is a %s, not a string", typeName(t[2]))
	}
	n, ok := t[4].(int64)
	if !ok || n < 0 {
		return nil, u.tensorErrf("storage %q: invalid element count %v", key, t[4])
	}
	if s, ok := u.storages[key]; ok {
		if s.dtype != g.dtype || s.numel != n {
			return nil, u.tensorErrf("storage %q is referenced as %d×%s and as %d×%s", key, s.numel, s.dtype, n, g.dtype)
		}
		return s, nil
	}
	es := int64(g.dtype.Size())
	if n > (1<<62)/es {
		return nil, u.tensorErrf("storage %q: %d elements is too large", key, n)
	}
	if u.loadStorage == nil {
		return nil, u.tensorErrf("storage %q: no tensor data available", key)
	}
	data, err := u.loadStorage(key)
	if err != nil {
		return nil, u.tensorErrf("storage %q: %v", key, err)
	}
	if int64(len(data)) < n*es {
		return nil, u.tensorErrf("storage %q holds %d bytes, too short for %d elements of %s (%d bytes)", key, len(data), n, g.dtype, n*es)
	}
	s := &pyStorage{dtype: g.dtype, key: key, numel: n, data: data[:n*es]}
	u.storages[key] = s
	u.copyBudget += 2 * n * es
	return s, nil
}

func intTuple(v any) ([]int64, bool) {
	t, ok := v.(pyTuple)
	if !ok {
		if l, ok := v.(*pyList); ok {
			t = l.items
		} else {
			return nil, false
		}
	}
	out := make([]int64, len(t))
	for i, e := range t {
		n, ok := e.(int64)
		if !ok {
			return nil, false
		}
		out[i] = n
	}
	return out, true
}

// rebuildTensor is torch._utils._rebuild_tensor_v2 on data: a view of
// storage with the given offset, size and stride, made contiguous.
func (u *unpickler) rebuildTensor(st, off, sz, str any) (any, error) {
	s, ok := st.(*pyStorage)
	if !ok {
		return nil, u.tensorErrf("tensor storage is a %s, not a storage", typeName(st))
	}
	offset, ok := off.(int64)
	if !ok || offset < 0 {
		return nil, u.tensorErrf("tensor on storage %q: invalid storage offset %v", s.key, off)
	}
	size, ok1 := intTuple(sz)
	stride, ok2 := intTuple(str)
	if !ok1 || !ok2 || len(size) != len(stride) || len(size) > maxDims {
		return nil, u.tensorErrf("tensor on storage %q: invalid size/stride", s.key)
	}
	n, ok := numel(size)
	if !ok {
		return nil, u.tensorErrf("tensor on storage %q: invalid size %v", s.key, size)
	}
	shape := make([]int, len(size))
	for i, d := range size {
		shape[i] = int(d)
	}
	t := &Tensor{DType: s.dtype, Shape: shape}
	es := int64(s.dtype.Size())
	if n == 0 {
		t.Data = []byte{}
		return t, nil
	}
	last := offset // index of the last element addressed
	contiguous := true
	want := int64(1)
	for i := len(size) - 1; i >= 0; i-- {
		if stride[i] < 0 {
			return nil, u.tensorErrf("tensor on storage %q: negative stride %v", s.key, stride)
		}
		if stride[i] > 0 && size[i]-1 > (s.numel-last)/stride[i] {
			return nil, u.tensorErrf("tensor of size %v, stride %v, offset %d needs more than the %d elements of storage %q", size, stride, offset, s.numel, s.key)
		}
		last += (size[i] - 1) * stride[i]
		if size[i] != 1 && stride[i] != want {
			contiguous = false
		}
		want *= size[i]
	}
	if last >= s.numel {
		return nil, u.tensorErrf("tensor of size %v, stride %v, offset %d needs more than the %d elements of storage %q", size, stride, offset, s.numel, s.key)
	}
	if contiguous {
		t.Data = s.data[offset*es : (offset+n)*es : (offset+n)*es]
		return t, nil
	}
	if n*es > u.copyBudget {
		return nil, u.tensorErrf("tensor of size %v, stride %v on storage %q: materialising it would exceed the copy budget", size, stride, s.key)
	}
	u.copyBudget -= n * es
	t.Data = gather(s.data, int(es), offset, size, stride, n)
	return t, nil
}

// gather copies the strided view into a new contiguous buffer.
func gather(src []byte, es int, offset int64, size, stride []int64, n int64) []byte {
	dst := make([]byte, n*int64(es))
	nd := len(size)
	if nd == 0 {
		copy(dst, src[offset*int64(es):])
		return dst
	}
	idx := make([]int64, nd)
	pos := offset
	inner, innerStride := size[nd-1], stride[nd-1]
	w := 0
	for {
		p := pos
		for j := int64(0); j < inner; j++ {
			copy(dst[w:w+es], src[p*int64(es):])
			w += es
			p += innerStride
		}
		// advance the outer indices
		d := nd - 2
		for ; d >= 0; d-- {
			idx[d]++
			pos += stride[d]
			if idx[d] < size[d] {
				break
			}
			pos -= idx[d] * stride[d]
			idx[d] = 0
		}
		if d < 0 {
			return dst
		}
	}
}
