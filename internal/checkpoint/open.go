package checkpoint

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// dirCandidates are the checkpoint files Open looks for in a directory, in
// order of preference (safetensors first).
var dirCandidates = []string{
	"model.safetensors",
	"open_clip_model.safetensors",
	"model.safetensors.index.json",
	"open_clip_pytorch_model.bin",
	"pytorch_model.bin",
}

// Open reads a CLIP checkpoint in any supported format and returns its
// state dict under the reference (openai/CLIP model.state_dict()) names.
//
// path may be a safetensors file (recognised by its header), a PyTorch zip
// (recognised by its "PK\x03\x04" magic: torch.save state dicts and
// TorchScript archives, see OpenPyTorch), or a directory holding one of
// model.safetensors, open_clip_model.safetensors, a sharded
// model.safetensors.index.json, open_clip_pytorch_model.bin or
// pytorch_model.bin (tried in that order). Nothing in the file is executed.
//
// The names are then normalised: a "module." prefix shared by every name
// (DistributedDataParallel) is removed; Hugging Face CLIPModel names are
// mapped with FromHF (Format gets an "hf-" prefix); and the
// input_resolution, context_length and vocab_size scalars of OpenAI's
// TorchScript archives, which are not weights, are dropped.
func Open(path string) (*File, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	var f *File
	if st.IsDir() {
		f, err = openDir(path)
	} else {
		f, err = openFile(path)
	}
	if err != nil {
		return nil, err
	}
	return normalize(f)
}

func openFile(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	var magic [8]byte
	n, err := io.ReadFull(fh, magic[:])
	fh.Close()
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil, err
	}
	switch {
	case n >= 4 && string(magic[:4]) == "PK\x03\x04", n >= 4 && string(magic[:4]) == "PK\x05\x06":
		return OpenPyTorch(path)
	case n >= 2 && magic[0] == 0x80 && magic[1] <= 5:
		return nil, fmt.Errorf("%s: %w", path, errLegacy)
	case strings.HasSuffix(path, ".index.json"):
		return openSharded(path)
	}
	return OpenSafetensors(path)
}

func openDir(dir string) (*File, error) {
	for _, c := range dirCandidates {
		p := filepath.Join(dir, c)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return openFile(p)
		}
	}
	return nil, fmt.Errorf("%s: no checkpoint found in the directory (looked for %s)", dir, strings.Join(dirCandidates, ", "))
}

// openSharded reads a Hugging Face sharded safetensors checkpoint from its
// index (model.safetensors.index.json: {"weight_map": {tensor: shard}}).
func openSharded(index string) (*File, error) {
	b, err := os.ReadFile(index)
	if err != nil {
		return nil, err
	}
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("%s: not a safetensors index: %v", index, err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, fmt.Errorf("%s: index has an empty weight_map", index)
	}
	shards := map[string][]string{}
	for t, s := range idx.WeightMap {
		if s == "" || strings.ContainsAny(s, `/\`) || s == "." || s == ".." {
			return nil, fmt.Errorf("%s: tensor %q: invalid shard file name %q", index, t, s)
		}
		shards[s] = append(shards[s], t)
	}
	names := make([]string, 0, len(shards))
	for s := range shards {
		names = append(names, s)
	}
	sort.Strings(names)
	out := &File{Path: index, Tensors: map[string]*Tensor{}, Format: "safetensors"}
	for _, s := range names {
		sf, err := OpenSafetensors(filepath.Join(filepath.Dir(index), s))
		if err != nil {
			out.Close()
			return nil, err
		}
		out.mappings = append(out.mappings, sf.mappings...)
		want := map[string]bool{}
		for _, t := range shards[s] {
			want[t] = true
		}
		for _, n := range sf.Names {
			if want[n] {
				if err := out.add(sf.Tensors[n]); err != nil {
					out.Close()
					return nil, err
				}
				delete(want, n)
			}
		}
		for t := range want {
			out.Close()
			return nil, fmt.Errorf("%s: tensor %q is listed in shard %s but not stored there", index, t, s)
		}
	}
	return out, nil
}

// jitExtras are scalars OpenAI's TorchScript models carry in their state
// dict that the reference build_model deletes.
var jitExtras = []string{"input_resolution", "context_length", "vocab_size"}

func normalize(f *File) (*File, error) {
	if len(f.Names) > 0 {
		all := true
		for _, n := range f.Names {
			if !strings.HasPrefix(n, "module.") {
				all = false
				break
			}
		}
		if all {
			g := &File{Path: f.Path, Tensors: map[string]*Tensor{}, Metadata: f.Metadata, Format: f.Format}
			for _, n := range f.Names {
				if err := g.add(renamed(f.Tensors[n], strings.TrimPrefix(n, "module."))); err != nil {
					return nil, err
				}
			}
			g.mappings, f.mappings = f.mappings, nil
			f = g
		}
	}
	if IsHF(f) {
		g, err := FromHF(f)
		if err != nil {
			return nil, err
		}
		f = g
	}
	for _, n := range jitExtras {
		if t := f.Tensors[n]; t != nil && len(t.Shape) == 0 {
			delete(f.Tensors, n)
			for i, m := range f.Names {
				if m == n {
					f.Names = append(f.Names[:i], f.Names[i+1:]...)
					break
				}
			}
		}
	}
	return f, nil
}
