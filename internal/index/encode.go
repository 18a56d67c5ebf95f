package index

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// The serialised graph: the magic, a header of little-endian uint64s
// (dim, n, M, efConstruction, efSearch, seed, entry, topLevel), the n
// levels as bytes, the layer-0 blocks and then each node's upper blocks,
// all as little-endian uint32s. The vectors are not included: Load takes
// them from the caller, who must pass the rows the graph was built on.
const magic = "goclip-hnsw-v1\n"

// WriteTo writes the graph (without the vectors) to w.
func (h *HNSW) WriteTo(w io.Writer) (int64, error) {
	bw := bufio.NewWriterSize(w, 1<<20)
	cw := &countWriter{w: bw}
	cw.write([]byte(magic))
	var hdr []byte
	for _, v := range []uint64{uint64(h.dim), uint64(h.n), uint64(h.cfg.M), uint64(h.cfg.EfConstruction),
		uint64(h.cfg.EfSearch), h.cfg.Seed, uint64(h.entry), uint64(h.topLevel)} {
		hdr = binary.LittleEndian.AppendUint64(hdr, v)
	}
	cw.write(hdr)
	cw.write(h.levels)
	buf := make([]byte, 0, 1<<16)
	flush := func(words []uint32) {
		for _, x := range words {
			buf = binary.LittleEndian.AppendUint32(buf, x)
			if len(buf) >= 1<<16 {
				cw.write(buf)
				buf = buf[:0]
			}
		}
	}
	flush(h.l0)
	for i := range h.n {
		flush(h.upper[i])
	}
	cw.write(buf)
	if cw.err == nil {
		cw.err = bw.Flush()
	}
	return cw.n, cw.err
}

type countWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countWriter) write(p []byte) {
	if c.err != nil {
		return
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
}

// ErrCorrupt marks a serialised graph that cannot be read back.
var ErrCorrupt = errors.New("index: corrupt HNSW data")

// Load reads a graph written by WriteTo and attaches it to vecs, the
// same rows it was built on (len(vecs)/dim must match the stored count).
// Every neighbour id is checked, so corrupt input gives an error, never a
// panic at search time.
func Load(r io.Reader, vecs []float32, dim int) (*HNSW, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	head := make([]byte, len(magic)+8*8)
	if _, err := io.ReadFull(br, head); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrCorrupt, err)
	}
	if string(head[:len(magic)]) != magic {
		return nil, fmt.Errorf("%w: bad magic", ErrCorrupt)
	}
	u := func(i int) uint64 { return binary.LittleEndian.Uint64(head[len(magic)+8*i:]) }
	gdim, n, m, efc, efs, seed, entry, top := u(0), u(1), u(2), u(3), u(4), u(5), u(6), u(7)
	switch {
	case gdim != uint64(dim) || dim <= 0:
		return nil, fmt.Errorf("%w: graph is for %d-d vectors, have %d-d", ErrCorrupt, gdim, dim)
	case len(vecs)%dim != 0 || n != uint64(len(vecs)/dim):
		return nil, fmt.Errorf("%w: graph has %d nodes, have %d vectors", ErrCorrupt, n, len(vecs)/max(dim, 1))
	case m < 2 || m > 255 || efc > math.MaxInt32 || efs > math.MaxInt32:
		return nil, fmt.Errorf("%w: bad parameters M=%d efConstruction=%d efSearch=%d", ErrCorrupt, m, efc, efs)
	case top > maxLevel || (n > 0 && entry >= n):
		return nil, fmt.Errorf("%w: bad entry point %d at level %d", ErrCorrupt, entry, top)
	}
	h := &HNSW{
		cfg: Config{M: int(m), EfConstruction: int(efc), EfSearch: int(efs), Seed: seed, Workers: 1},
		dim: dim, n: int(n), vecs: vecs, entry: uint32(entry), topLevel: int(top),
	}
	h.cfg = h.cfg.withDefaults()
	h.levels = make([]uint8, n)
	if _, err := io.ReadFull(br, h.levels); err != nil {
		return nil, fmt.Errorf("%w: levels: %v", ErrCorrupt, err)
	}
	if n > 0 && int(h.levels[entry]) != h.topLevel {
		return nil, fmt.Errorf("%w: entry point level %d, top level %d", ErrCorrupt, h.levels[entry], h.topLevel)
	}
	read := func(dst []uint32, maxCount int) error {
		buf := make([]byte, 4*len(dst))
		if _, err := io.ReadFull(br, buf); err != nil {
			return err
		}
		for i := range dst {
			dst[i] = binary.LittleEndian.Uint32(buf[4*i:])
		}
		for b := 0; b < len(dst); b += maxCount + 1 {
			c := dst[b]
			if int(c) > maxCount {
				return fmt.Errorf("%d neighbours, at most %d", c, maxCount)
			}
			for _, id := range dst[b+1 : b+1+int(c)] {
				if uint64(id) >= n {
					return fmt.Errorf("neighbour %d of %d nodes", id, n)
				}
			}
		}
		return nil
	}
	h.l0 = make([]uint32, int(n)*(h.m0()+1))
	for lo := 0; lo < int(n); lo += 1 << 16 {
		hi := min(lo+1<<16, int(n))
		w := h.m0() + 1
		if err := read(h.l0[lo*w:hi*w], h.m0()); err != nil {
			return nil, fmt.Errorf("%w: layer 0: %v", ErrCorrupt, err)
		}
	}
	h.upper = make([][]uint32, n)
	for i := range h.n {
		l := int(h.levels[i])
		if l > maxLevel {
			return nil, fmt.Errorf("%w: node %d at level %d", ErrCorrupt, i, l)
		}
		if l == 0 {
			continue
		}
		h.upper[i] = make([]uint32, l*(h.cfg.M+1))
		if err := read(h.upper[i], h.cfg.M); err != nil {
			return nil, fmt.Errorf("%w: node %d: %v", ErrCorrupt, i, err)
		}
	}
	// An upper-layer neighbour must live on that layer too.
	for i := range h.n {
		for lc := 1; lc <= int(h.levels[i]); lc++ {
			b := h.block(uint32(i), lc)
			for _, id := range b[1 : 1+b[0]] {
				if int(h.levels[id]) < lc {
					return nil, fmt.Errorf("%w: node %d links to %d on layer %d above its level", ErrCorrupt, i, id, lc)
				}
			}
		}
	}
	return h, nil
}
