package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Record is what the store keeps for one file under one model.
type Record struct {
	// Size, ModTime (Unix nanoseconds) and Hash (SHA-256 of the content)
	// identify the file version the record was made from.
	Size    int64
	ModTime int64
	Hash    [32]byte
	// Embedding is the L2-normalised image embedding; nil for a failure.
	Embedding []float32
	// Err says why the file could not be embedded (corrupt, unsupported);
	// empty for a success. Failures are kept so that a rerun skips the
	// file until it changes.
	Err string
}

// Failed reports whether the record is a failure.
func (r *Record) Failed() bool { return r.Embedding == nil }

// Record encoding, version 1, little-endian:
//
//	[0]     version (1)
//	[1]     flags: bit 0 = failure
//	[2:10]  size (int64)
//	[10:18] mtime, Unix ns (int64)
//	[18:50] SHA-256
//	[50:54] payload length n: the embedding's dimension, or the error's bytes
//	[54:]   n float32s, or the error text
const (
	recVersion = 1
	recHeader  = 54
	flagFailed = 1
	maxDim     = 1 << 16
	maxErrLen  = 1 << 12
)

var errBadRecord = errors.New("store: corrupt record")

func encodeRecord(r *Record) []byte {
	var b []byte
	var n int
	flags := byte(0)
	if r.Embedding == nil {
		flags = flagFailed
		n = min(len(r.Err), maxErrLen)
		b = make([]byte, recHeader+n)
		copy(b[recHeader:], r.Err[:n])
	} else {
		n = len(r.Embedding)
		b = make([]byte, recHeader+4*n)
		for i, v := range r.Embedding {
			binary.LittleEndian.PutUint32(b[recHeader+4*i:], math.Float32bits(v))
		}
	}
	b[0], b[1] = recVersion, flags
	binary.LittleEndian.PutUint64(b[2:], uint64(r.Size))
	binary.LittleEndian.PutUint64(b[10:], uint64(r.ModTime))
	copy(b[18:50], r.Hash[:])
	binary.LittleEndian.PutUint32(b[50:], uint32(n))
	return b
}

// decodeRecord parses an encoded record; with meta it skips the payload
// (the embedding stays nil, Err is set to a non-empty marker for failures).
func decodeRecord(b []byte, meta bool) (Record, error) {
	var r Record
	if len(b) < recHeader {
		return r, fmt.Errorf("%w: %d bytes", errBadRecord, len(b))
	}
	if b[0] != recVersion {
		return r, fmt.Errorf("%w: version %d", errBadRecord, b[0])
	}
	flags := b[1]
	if flags&^flagFailed != 0 {
		return r, fmt.Errorf("%w: flags %#x", errBadRecord, flags)
	}
	r.Size = int64(binary.LittleEndian.Uint64(b[2:]))
	r.ModTime = int64(binary.LittleEndian.Uint64(b[10:]))
	copy(r.Hash[:], b[18:50])
	n := int(binary.LittleEndian.Uint32(b[50:]))
	p := b[recHeader:]
	if flags&flagFailed != 0 {
		if n > maxErrLen || len(p) != n {
			return r, fmt.Errorf("%w: error text of %d bytes, %d present", errBadRecord, n, len(p))
		}
		r.Err = string(p)
		if r.Err == "" {
			r.Err = "failed"
		}
		return r, nil
	}
	if n == 0 || n > maxDim || len(p) != 4*n {
		return r, fmt.Errorf("%w: %d-d embedding in %d bytes", errBadRecord, n, len(p))
	}
	if meta {
		return r, nil
	}
	r.Embedding = make([]float32, n)
	for i := range r.Embedding {
		r.Embedding[i] = math.Float32frombits(binary.LittleEndian.Uint32(p[4*i:]))
	}
	return r, nil
}

// recordDim returns the embedding dimension of an encoded success record,
// or 0 for a failure or a malformed record.
func recordDim(b []byte) int {
	if len(b) < recHeader || b[0] != recVersion || b[1] != 0 {
		return 0
	}
	n := int(binary.LittleEndian.Uint32(b[50:]))
	if n == 0 || n > maxDim || len(b) != recHeader+4*n {
		return 0
	}
	return n
}

// appendEmbedding appends the float32s of an encoded success record.
func appendEmbedding(dst []float32, b []byte) []float32 {
	p := b[recHeader:]
	for i := 0; i+4 <= len(p); i += 4 {
		dst = append(dst, math.Float32frombits(binary.LittleEndian.Uint32(p[i:])))
	}
	return dst
}
