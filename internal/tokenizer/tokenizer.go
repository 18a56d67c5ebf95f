// Package tokenizer is a byte-level BPE tokenizer identical to OpenAI CLIP's
// SimpleTokenizer and clip.tokenize(texts, context_length, truncate=True):
// ftfy-style text fixing, HTML unescaping, whitespace cleaning, Python
// lowercasing, the CLIP pre-tokenizer pattern, and lowest-rank-first BPE
// merges over the GPT-2 byte-to-unicode alphabet.
//
// The vocabulary is read from OpenAI's bpe_simple_vocab_16e6.txt.gz, from
// Hugging Face vocab.json + merges.txt, or from a Hugging Face
// tokenizer.json; all three give identical ids.
package tokenizer

import (
	"container/heap"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"
)

// DefaultContextLength is CLIP's text context length.
const DefaultContextLength = 77

// maxCacheEntries bounds the BPE cache; when full it is emptied.
const maxCacheEntries = 1 << 16

// Tokenizer encodes text into CLIP token ids. It is safe for concurrent use.
type Tokenizer struct {
	tokens   []string         // id -> token string
	vocab    map[string]int32 // token string -> id
	merges   map[uint64]merge // (left id, right id) -> merge
	byteID   [256]int32       // id of the byte's symbol
	byteEnd  [256]int32       // id of the byte's symbol + "</w>"
	sot, eot int32

	mu    sync.RWMutex
	cache map[string][]int32
}

type merge struct {
	rank int32
	id   int32
}

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// BytesToUnicode returns the GPT-2 byte-to-unicode table: printable Latin-1
// bytes map to themselves, the other 68 bytes to U+0100 onwards. order lists
// the bytes in vocabulary order (ids 0..255).
func BytesToUnicode() (table [256]rune, order [256]byte) {
	n := 0
	var used [256]bool
	add := func(lo, hi int) {
		for b := lo; b <= hi; b++ {
			table[b] = rune(b)
			order[n] = byte(b)
			used[b] = true
			n++
		}
	}
	add('!', '~')
	add(0xa1, 0xac)
	add(0xae, 0xff)
	extra := 0
	for b := 0; b < 256; b++ {
		if !used[b] {
			table[b] = rune(256 + extra)
			order[n] = byte(b)
			extra++
			n++
		}
	}
	return table, order
}

var byteUnicode, byteOrder = BytesToUnicode()

// unicodeByte inverts byteUnicode.
var unicodeByte = func() map[rune]byte {
	m := make(map[rune]byte, 256)
	for b, r := range byteUnicode {
		m[r] = byte(b)
	}
	return m
}()

// SOT returns the id of <|startoftext|>.
func (t *Tokenizer) SOT() int { return int(t.sot) }

// EOT returns the id of <|endoftext|>.
func (t *Tokenizer) EOT() int { return int(t.eot) }

// VocabSize returns the number of ids (largest id + 1).
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

// Token returns the vocabulary string of id, or "" if there is none.
func (t *Tokenizer) Token(id int) string {
	if id < 0 || id >= len(t.tokens) {
		return ""
	}
	return t.tokens[id]
}

// Encode returns the BPE ids of text after cleaning, without SOT/EOT and
// without truncation (SimpleTokenizer.encode).
func (t *Tokenizer) Encode(text string) []int {
	ids := t.appendIDs(nil, text)
	out := make([]int, len(ids))
	for i, id := range ids {
		out[i] = int(id)
	}
	return out
}

func (t *Tokenizer) appendIDs(dst []int32, text string) []int32 {
	forEachPiece(Clean(text), func(p string) {
		dst = append(dst, t.pieceIDs(p)...)
	})
	return dst
}

// Tokenize returns the clip.tokenize(text, contextLength, truncate=True)
// row: SOT, the BPE ids, EOT, zero padding. When SOT + ids + EOT does not fit
// it is cut to contextLength and the last position is overwritten with EOT
// (so the last kept BPE id is dropped), and truncated is true. A
// contextLength below 1 gives an empty row.
func (t *Tokenizer) Tokenize(text string, contextLength int) (ids []int32, truncated bool) {
	if contextLength < 1 {
		return []int32{}, false
	}
	row := make([]int32, 1, contextLength+8)
	row[0] = t.sot
	row = t.appendIDs(row, text)
	row = append(row, t.eot)
	if len(row) > contextLength {
		row = row[:contextLength]
		row[contextLength-1] = t.eot
		truncated = true
	}
	out := make([]int32, contextLength)
	copy(out, row)
	return out, truncated
}

// TokenizeBatch tokenizes each text into one row of a [len(texts),
// contextLength] row-major matrix and reports which rows were truncated.
func (t *Tokenizer) TokenizeBatch(texts []string, contextLength int) ([]int32, []bool) {
	if contextLength < 1 {
		return []int32{}, make([]bool, len(texts))
	}
	out := make([]int32, 0, len(texts)*contextLength)
	trunc := make([]bool, len(texts))
	for i, s := range texts {
		row, tr := t.Tokenize(s, contextLength)
		out = append(out, row...)
		trunc[i] = tr
	}
	return out, trunc
}

// Decode is SimpleTokenizer.decode: the tokens' symbols are mapped back to
// bytes, decoded as UTF-8 with invalid sequences replaced by U+FFFD (one per
// maximal invalid subpart, as Python does), and every "</w>" becomes a space.
// Ids outside the vocabulary are skipped.
func (t *Tokenizer) Decode(ids []int) string {
	var buf []byte
	for _, id := range ids {
		if id < 0 || id >= len(t.tokens) {
			continue
		}
		for _, r := range t.tokens[id] {
			if b, ok := unicodeByte[r]; ok {
				buf = append(buf, b)
			} else {
				buf = utf8.AppendRune(buf, r)
			}
		}
	}
	return strings.ReplaceAll(pyDecodeUTF8(buf), "</w>", " ")
}

// pyDecodeUTF8 decodes b like Python's bytes.decode("utf-8", "replace").
func pyDecodeUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(len(b) + 8)
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r != utf8.RuneError || size > 1 {
			sb.WriteRune(r)
			b = b[size:]
			continue
		}
		sb.WriteRune(utf8.RuneError)
		b = b[maximalSubpart(b):]
	}
	return sb.String()
}

// maximalSubpart returns the length of the invalid sequence at the start of
// b that Python replaces with a single U+FFFD.
func maximalSubpart(b []byte) int {
	c := b[0]
	var need int
	lo, hi := byte(0x80), byte(0xbf)
	switch {
	case c >= 0xc2 && c <= 0xdf:
		need = 1
	case c == 0xe0:
		need, lo = 2, 0xa0
	case c == 0xed:
		need, hi = 2, 0x9f
	case c >= 0xe1 && c <= 0xef:
		need = 2
	case c == 0xf0:
		need, lo = 3, 0x90
	case c == 0xf4:
		need, hi = 3, 0x8f
	case c >= 0xf1 && c <= 0xf3:
		need = 3
	default:
		return 1
	}
	n := 1
	for k := 1; k <= need && k < len(b); k++ {
		x := b[k]
		if k == 1 && (x < lo || x > hi) || k > 1 && (x < 0x80 || x > 0xbf) {
			break
		}
		n++
	}
	return n
}

// pieceIDs returns the ids of one pre-tokenizer piece.
func (t *Tokenizer) pieceIDs(p string) []int32 {
	switch p {
	case sotText:
		return []int32{t.sot}
	case eotText:
		return []int32{t.eot}
	}
	t.mu.RLock()
	ids, ok := t.cache[p]
	t.mu.RUnlock()
	if ok {
		return ids
	}
	ids = t.bpe(p)
	t.mu.Lock()
	if len(t.cache) >= maxCacheEntries {
		t.cache = make(map[string][]int32)
	}
	t.cache[p] = ids
	t.mu.Unlock()
	return ids
}

// bpe runs the merge loop on the UTF-8 bytes of piece: the last byte's
// symbol carries "</w>"; the adjacent pair with the lowest merge rank is
// merged everywhere (non-overlapping, left to right) until no pair has a
// rank.
func (t *Tokenizer) bpe(piece string) []int32 {
	if len(piece) == 0 {
		return nil
	}
	word := make([]int32, len(piece))
	for i := 0; i < len(piece); i++ {
		word[i] = t.byteID[piece[i]]
	}
	word[len(word)-1] = t.byteEnd[piece[len(piece)-1]]
	if len(word) > longWord {
		return t.bpeLong(word)
	}
	return t.bpeShort(word)
}

// longWord is the piece length (bytes) above which bpe switches from the
// quadratic scan to the heap-based merge loop.
const longWord = 48

// bpeShort is the reference loop, quadratic in the word length.
func (t *Tokenizer) bpeShort(word []int32) []int32 {
	for len(word) > 1 {
		best := merge{rank: -1}
		var bl, br int32
		for i := 0; i+1 < len(word); i++ {
			m, ok := t.merges[pairKey(word[i], word[i+1])]
			if ok && (best.rank < 0 || m.rank < best.rank) {
				best, bl, br = m, word[i], word[i+1]
			}
		}
		if best.rank < 0 {
			break
		}
		out := word[:0]
		for i := 0; i < len(word); {
			if i+1 < len(word) && word[i] == bl && word[i+1] == br {
				out = append(out, best.id)
				i += 2
			} else {
				out = append(out, word[i])
				i++
			}
		}
		word = out
	}
	return word
}

// BPE returns the vocabulary strings of the BPE tokens of one piece (the
// reference's bpe(token).split(' ')).
func (t *Tokenizer) BPE(piece string) []string {
	ids := t.pieceIDs(piece)
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = t.tokens[id]
	}
	return out
}

// bpeLong gives the same result as bpeShort in O(n log n): each pass pops
// every queued occurrence of the lowest-ranked pair and merges them left to
// right, skipping occurrences an earlier merge of the pass consumed, exactly
// as the reference pass does; pairs created by a pass are queued for later
// passes (they cannot be the pair being merged).
func (t *Tokenizer) bpeLong(word []int32) []int32 {
	n := len(word)
	sym := append([]int32(nil), word...)
	next := make([]int32, n)
	prev := make([]int32, n)
	alive := make([]bool, n)
	for i := range n {
		next[i], prev[i], alive[i] = int32(i+1), int32(i-1), true
	}
	next[n-1] = -1
	var h pairHeap
	push := func(i int32) {
		if i < 0 || next[i] < 0 {
			return
		}
		j := next[i]
		if m, ok := t.merges[pairKey(sym[i], sym[j])]; ok {
			heap.Push(&h, pairEntry{rank: m.rank, pos: i, left: sym[i], right: sym[j], id: m.id})
		}
	}
	for i := range n - 1 {
		push(int32(i))
	}
	var batch []pairEntry
	for h.Len() > 0 {
		r := h[0].rank
		batch = batch[:0]
		for h.Len() > 0 && h[0].rank == r {
			batch = append(batch, heap.Pop(&h).(pairEntry))
		}
		sort.Slice(batch, func(a, b int) bool { return batch[a].pos < batch[b].pos })
		var touched []int32
		for _, e := range batch {
			i := e.pos
			if !alive[i] || sym[i] != e.left {
				continue
			}
			j := next[i]
			if j < 0 || sym[j] != e.right {
				continue
			}
			sym[i] = e.id
			alive[j] = false
			next[i] = next[j]
			if next[j] >= 0 {
				prev[next[j]] = i
			}
			touched = append(touched, i)
		}
		for _, i := range touched {
			if alive[i] {
				push(prev[i])
				push(i)
			}
		}
	}
	out := make([]int32, 0, n)
	for i := int32(0); i >= 0; i = next[i] {
		out = append(out, sym[i])
	}
	return out
}

type pairEntry struct {
	rank, pos, left, right, id int32
}

type pairHeap []pairEntry

func (h pairHeap) Len() int { return len(h) }
func (h pairHeap) Less(a, b int) bool {
	if h[a].rank != h[b].rank {
		return h[a].rank < h[b].rank
	}
	return h[a].pos < h[b].pos
}
func (h pairHeap) Swap(a, b int) { h[a], h[b] = h[b], h[a] }
func (h *pairHeap) Push(x any)   { *h = append(*h, x.(pairEntry)) }
func (h *pairHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
