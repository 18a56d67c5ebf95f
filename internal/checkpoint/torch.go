package checkpoint

import (
	"archive/zip"
	"bufio"
	"bytes"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
)

// maxPickleSize bounds the pickle program (data.pkl) of a zip checkpoint;
// maxCodeSize bounds a TorchScript code file read for its declarations.
const (
	maxPickleSize = 1 << 30
	maxCodeSize   = 16 << 20
)

// OpenPyTorch reads a PyTorch zip checkpoint without executing it:
//
//   - torch.save output (open_clip_pytorch_model.bin, pytorch_model.bin,
//     most .pt files): the pickled object must be a state dict, or a dict
//     holding one under "state_dict", "model_state_dict", "model" or
//     "module" (training checkpoints); Format is "pytorch-zip";
//   - torch.jit.save / TorchScript archives (OpenAI's ViT-B-32.pt and
//     friends): the pickled module tree is walked and every parameter and
//     buffer is named by its attribute path; Format is "torchscript".
//
// The zip's top folder may have any name. Names are as stored (see Open
// for the normalisation to reference names). Stored (uncompressed) entries,
// which is what PyTorch writes, are used in place from the memory-mapped
// file; compressed ones are decompressed into memory.
func OpenPyTorch(path string) (*File, error) {
	data, mapped, err := readWhole(path)
	if err != nil {
		return nil, err
	}
	f, err := ParsePyTorch(path, data)
	if err != nil {
		if mapped {
			unmapFile(data)
		}
		return nil, err
	}
	if mapped {
		f.mappings = [][]byte{data}
	}
	return f, nil
}

// ParsePyTorch is OpenPyTorch on a zip archive held in memory; tensor Data
// may alias data. name is used in errors and recorded as File.Path.
func ParsePyTorch(name string, data []byte) (*File, error) {
	if len(data) >= 2 && data[0] == 0x80 && data[1] <= 5 {
		return nil, fmt.Errorf("%s: %w", name, errLegacy)
	}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, fmt.Errorf("%s: not a PyTorch zip checkpoint: %v", name, err)
	}
	entries := map[string]*zip.File{}
	var pkl *zip.File
	for _, zf := range zr.File {
		entries[zf.Name] = zf
		if zf.Name == "data.pkl" || (path.Base(zf.Name) == "data.pkl" && strings.Count(zf.Name, "/") == 1) {
			if pkl != nil {
				return nil, fmt.Errorf("%s: zip holds two pickles, %s and %s", name, pkl.Name, zf.Name)
			}
			pkl = zf
		}
	}
	if pkl == nil {
		return nil, fmt.Errorf("%s: zip has no data.pkl entry: not a PyTorch checkpoint", name)
	}
	prefix := strings.TrimSuffix(pkl.Name, "data.pkl")
	torchscript := entries[prefix+"constants.pkl"] != nil
	for n := range entries {
		if strings.HasPrefix(n, prefix+"code/") {
			torchscript = true
			break
		}
	}
	prog, err := entryBytes(data, pkl, maxPickleSize)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %v", name, pkl.Name, err)
	}
	load := func(key string) ([]byte, error) {
		for _, c := range []string{prefix + "data/" + key, prefix + key} {
			if zf := entries[c]; zf != nil && !strings.HasSuffix(c, "/") {
				return entryBytes(data, zf, 1<<40)
			}
		}
		return nil, fmt.Errorf("no zip entry %sdata/%s", prefix, key)
	}
	u := newUnpickler(name+" ("+pkl.Name+")", prog, torchscript, load)
	root, err := u.run()
	if err != nil {
		return nil, err
	}
	f := &File{Path: name, Tensors: map[string]*Tensor{}, Format: "pytorch-zip"}
	if obj, ok := root.(*pyObject); ok && torchscript {
		f.Format = "torchscript"
		decls, err := readDecls(data, entries, prefix)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", name, err)
		}
		if err := walkScript(f, "", obj, decls, map[*pyObject]bool{}); err != nil {
			return nil, err
		}
	} else {
		sd := findStateDict(root, 0)
		if sd == nil {
			return nil, fmt.Errorf("%s: no state dict of tensors found: the pickle holds a %s", name, describe(root))
		}
		for i, k := range sd.keys {
			t, ok := sd.vals[i].(*Tensor)
			if !ok {
				continue // non-tensor entries (extra state) are not weights
			}
			ks, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("%s: state dict key of type %s", name, typeName(k))
			}
			c := *t
			c.Name = ks
			if err := f.add(&c); err != nil {
				return nil, err
			}
		}
	}
	if len(f.Names) == 0 {
		return nil, fmt.Errorf("%s: checkpoint holds no tensors", name)
	}
	return f, nil
}

// entryBytes returns a zip entry's contents: a slice of data for stored
// entries, a decompressed copy (at most limit bytes) otherwise.
func entryBytes(data []byte, zf *zip.File, limit uint64) ([]byte, error) {
	size := zf.UncompressedSize64
	if size > limit {
		return nil, fmt.Errorf("entry %s: %d bytes exceeds the %d-byte limit", zf.Name, size, limit)
	}
	if zf.Method == zip.Store {
		off, err := zf.DataOffset()
		if err != nil {
			return nil, fmt.Errorf("entry %s: %v", zf.Name, err)
		}
		if zf.CompressedSize64 != size || off < 0 || uint64(off) > uint64(len(data)) || size > uint64(len(data))-uint64(off) {
			return nil, fmt.Errorf("entry %s: %d bytes at offset %d run past the end of the %d-byte archive (truncated?)", zf.Name, size, off, len(data))
		}
		return data[off : uint64(off)+size : uint64(off)+size], nil
	}
	rc, err := zf.Open()
	if err != nil {
		return nil, fmt.Errorf("entry %s: %v", zf.Name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, int64(size)+1))
	if err != nil {
		return nil, fmt.Errorf("entry %s: %v", zf.Name, err)
	}
	if uint64(len(b)) != size {
		return nil, fmt.Errorf("entry %s: decompressed to %d bytes, the directory says %d", zf.Name, len(b), size)
	}
	return b, nil
}

// findStateDict finds the dict of tensors in a torch.save payload.
func findStateDict(v any, depth int) *pyDict {
	d, ok := v.(*pyDict)
	if !ok || depth > 4 {
		return nil
	}
	for _, x := range d.vals {
		if _, ok := x.(*Tensor); ok {
			return d
		}
	}
	for _, k := range []string{"state_dict", "model_state_dict", "model", "module"} {
		if sub, ok := d.get(k); ok {
			if r := findStateDict(sub, depth+1); r != nil {
				return r
			}
		}
	}
	return nil
}

// describe summarises a decoded value for an error message.
func describe(v any) string {
	d, ok := v.(*pyDict)
	if !ok {
		return typeName(v)
	}
	var ks []string
	for i, k := range d.keys {
		if i == 8 {
			ks = append(ks, "...")
			break
		}
		if s, ok := k.(string); ok {
			ks = append(ks, fmt.Sprintf("%q", s))
		} else {
			ks = append(ks, typeName(k))
		}
	}
	return fmt.Sprintf("dict with keys [%s]", strings.Join(ks, ", "))
}

// classDecl is what a TorchScript class declaration says about its
// attributes: which are parameters and which are buffers.
type classDecl struct{ params, buffers map[string]bool }

// readDecls parses the class declarations of a TorchScript archive's code
// (code/__torch__/a/b.py declares classes __torch__.a.b.<Name>), keeping
// each class's __parameters__ and __buffers__ lists. Classes without a
// declaration are treated as "every tensor attribute is state".
func readDecls(data []byte, entries map[string]*zip.File, prefix string) (map[string]*classDecl, error) {
	decls := map[string]*classDecl{}
	names := make([]string, 0, len(entries))
	for n := range entries {
		if strings.HasPrefix(n, prefix+"code/") && strings.HasSuffix(n, ".py") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		b, err := entryBytes(data, entries[n], maxCodeSize)
		if err != nil {
			return nil, err
		}
		mod := strings.ReplaceAll(strings.TrimSuffix(strings.TrimPrefix(n, prefix+"code/"), ".py"), "/", ".")
		var cur *classDecl
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, maxCodeSize)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "class ") {
				cname := strings.TrimPrefix(line, "class ")
				if i := strings.IndexAny(cname, "(:"); i >= 0 {
					cname = cname[:i]
				}
				cur = &classDecl{params: map[string]bool{}, buffers: map[string]bool{}}
				decls[mod+"."+strings.TrimSpace(cname)] = cur
				continue
			}
			if cur == nil || len(line) == 0 || line[0] != ' ' {
				if len(line) > 0 && line[0] != ' ' {
					cur = nil
				}
				continue
			}
			t := strings.TrimSpace(line)
			for _, kind := range []struct {
				prefix string
				set    map[string]bool
			}{{"__parameters__", cur.params}, {"__buffers__", cur.buffers}} {
				if rest, ok := strings.CutPrefix(t, kind.prefix); ok {
					for _, s := range strings.Split(strings.Trim(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(rest), "=")), "[]"), ",") {
						s = strings.Trim(strings.TrimSpace(s), `"'`)
						if s != "" {
							kind.set[s] = true
						}
					}
				}
			}
		}
	}
	return decls, nil
}

// walkScript adds the parameters and buffers of a TorchScript module object
// and its submodules, named by attribute path.
func walkScript(f *File, prefix string, obj *pyObject, decls map[string]*classDecl, onPath map[*pyObject]bool) error {
	if onPath[obj] {
		return fmt.Errorf("%s: module %q contains itself", f.Path, strings.TrimSuffix(prefix, "."))
	}
	if len(onPath) >= 64 {
		return fmt.Errorf("%s: module tree deeper than 64 levels at %q", f.Path, prefix)
	}
	onPath[obj] = true
	defer delete(onPath, obj)
	d, ok := obj.state.(*pyDict)
	if !ok {
		return nil // __getstate__ objects carry no module state
	}
	decl := decls[obj.class]
	for i, k := range d.keys {
		ks, ok := k.(string)
		if !ok {
			continue
		}
		switch v := d.vals[i].(type) {
		case *Tensor:
			if decl != nil && !decl.params[ks] && !decl.buffers[ks] {
				continue // a plain tensor attribute, not state
			}
			c := *v
			c.Name = prefix + ks
			if err := f.add(&c); err != nil {
				return err
			}
		case *pyObject:
			if err := walkScript(f, prefix+ks+".", v, decls, onPath); err != nil {
				return err
			}
		}
	}
	return nil
}
