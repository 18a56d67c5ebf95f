package tokenizer

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// File names looked for next to a checkpoint.
const (
	OpenAIVocabFile = "bpe_simple_vocab_16e6.txt.gz"
	HFTokenizerFile = "tokenizer.json"
	HFVocabFile     = "vocab.json"
	HFMergesFile    = "merges.txt"
)

// EnvTokenizer names the environment variable that points at a tokenizer
// file or directory when none sits next to the checkpoint.
const EnvTokenizer = "GOCLIP_TOKENIZER"

// openAIMerges is how many merge lines SimpleTokenizer reads
// (49152 - 256 - 2).
const openAIMerges = 49152 - 256 - 2

// maxVocabBytes bounds how much a loader reads (decompressed).
const maxVocabBytes = 256 << 20

// ErrNotFound is returned (wrapped) by Find when no tokenizer is found.
var ErrNotFound = errors.New("tokenizer not found")

// Find locates a tokenizer for a checkpoint directory: dir itself holding
// bpe_simple_vocab_16e6.txt.gz, tokenizer.json, or vocab.json with
// merges.txt; then $GOCLIP_TOKENIZER. It returns a path that Load accepts.
func Find(dir string) (string, error) {
	if dir != "" {
		if p, ok := findIn(dir); ok {
			return p, nil
		}
	}
	if env := os.Getenv(EnvTokenizer); env != "" {
		st, err := os.Stat(env)
		if err != nil {
			return "", fmt.Errorf("$%s=%q: %w", EnvTokenizer, env, err)
		}
		if !st.IsDir() {
			return env, nil
		}
		if p, ok := findIn(env); ok {
			return p, nil
		}
		return "", fmt.Errorf("%w: $%s=%q holds none of %s, %s, or %s + %s",
			ErrNotFound, EnvTokenizer, env, OpenAIVocabFile, HFTokenizerFile, HFVocabFile, HFMergesFile)
	}
	where := "no directory given"
	if dir != "" {
		where = "none in " + dir
	}
	return "", fmt.Errorf("%w (%s): need %s, %s, or %s + %s next to the model; "+
		"`goclip pull` brings them with the model, or pass --tokenizer PATH or set $%s",
		ErrNotFound, where, OpenAIVocabFile, HFTokenizerFile, HFVocabFile, HFMergesFile, EnvTokenizer)
}

func findIn(dir string) (string, bool) {
	for _, name := range []string{OpenAIVocabFile, HFTokenizerFile} {
		p := filepath.Join(dir, name)
		if isFile(p) {
			return p, true
		}
	}
	v := filepath.Join(dir, HFVocabFile)
	if isFile(v) && isFile(filepath.Join(dir, HFMergesFile)) {
		return v, true
	}
	return "", false
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// Load reads a tokenizer from path: OpenAI's gzip BPE file (*.gz, or the
// same text uncompressed as *.txt other than merges.txt), a Hugging Face
// tokenizer.json, a vocab.json (with merges.txt beside it), a merges.txt
// (with vocab.json beside it), or a directory holding any of them.
func Load(path string) (*Tokenizer, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if st.IsDir() {
		p, ok := findIn(path)
		if !ok {
			return nil, fmt.Errorf("tokenizer: %w: %s holds none of %s, %s, or %s + %s",
				ErrNotFound, path, OpenAIVocabFile, HFTokenizerFile, HFVocabFile, HFMergesFile)
		}
		path = p
	}
	base := strings.ToLower(filepath.Base(path))
	switch {
	case strings.HasSuffix(base, ".gz"):
		return loadOpenAI(path, true)
	case base == HFMergesFile:
		return loadHFPair(filepath.Join(filepath.Dir(path), HFVocabFile), path)
	case strings.HasSuffix(base, ".txt"):
		return loadOpenAI(path, false)
	case strings.HasSuffix(base, ".json"):
		data, err := readLimited(path, false)
		if err != nil {
			return nil, err
		}
		if isTokenizerJSON(data) {
			t, err := parseTokenizerJSON(data)
			if err != nil {
				return nil, fmt.Errorf("tokenizer: %s: %w", path, err)
			}
			return t, nil
		}
		return loadHFPairData(path, data, filepath.Join(filepath.Dir(path), HFMergesFile))
	}
	return nil, fmt.Errorf("tokenizer: %s: unknown format (want %s, %s, or %s + %s)",
		path, OpenAIVocabFile, HFTokenizerFile, HFVocabFile, HFMergesFile)
}

func readLimited(path string, gz bool) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	defer f.Close()
	var r io.Reader = f
	if gz {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("tokenizer: %s: not gzip: %w", path, err)
		}
		defer zr.Close()
		r = zr
	}
	data, err := io.ReadAll(io.LimitReader(r, maxVocabBytes+1))
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", path, err)
	}
	if len(data) > maxVocabBytes {
		return nil, fmt.Errorf("tokenizer: %s: larger than %d bytes", path, maxVocabBytes)
	}
	return data, nil
}

func loadOpenAI(path string, gz bool) (*Tokenizer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	defer f.Close()
	var r io.Reader = f
	if gz {
		zr, err := gzip.NewReader(bufio.NewReaderSize(f, 64<<10))
		if err != nil {
			return nil, fmt.Errorf("tokenizer: %s: not gzip: %w", path, err)
		}
		defer zr.Close()
		r = zr
	}
	t, err := parseOpenAI(r)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", path, err)
	}
	return t, nil
}

// ParseOpenAI builds a tokenizer from the decompressed text of OpenAI's
// bpe_simple_vocab_16e6.txt: a header line, then merges "a b"; the first
// 48894 merges are used, as SimpleTokenizer does. The vocabulary is the 256
// byte symbols, the same with "</w>", one token per merge, then
// <|startoftext|> and <|endoftext|>.
func ParseOpenAI(data []byte) (*Tokenizer, error) { return parseOpenAI(bytes.NewReader(data)) }

// parseOpenAI reads only the lines it needs, so the rest of a compressed
// file is never decompressed.
func parseOpenAI(r io.Reader) (*Tokenizer, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if _, err := br.ReadSlice('\n'); err != nil {
		if err == io.EOF || err == bufio.ErrBufferFull {
			return nil, errors.New("no merges after the header line")
		}
		return nil, err
	}
	pairs := make([][2]string, 0, openAIMerges)
	for line := 2; len(pairs) < openAIMerges; line++ {
		ln, err := br.ReadSlice('\n')
		if err != nil && err != io.EOF {
			if err == bufio.ErrBufferFull {
				return nil, fmt.Errorf("line %d: longer than %d bytes", line, br.Size())
			}
			return nil, err
		}
		a, b, n := twoFields(ln)
		switch {
		case n == 2:
			s := string(ln[a[0]:b[1]]) // one allocation for both symbols
			pairs = append(pairs, [2]string{s[:a[1]-a[0]], s[b[0]-a[0]:]})
		case n == 0 && err == io.EOF:
		default:
			return nil, fmt.Errorf("line %d: merge %q is not two symbols", line, bytes.TrimSpace(ln))
		}
		if err == io.EOF {
			break
		}
	}
	if len(pairs) == 0 {
		return nil, errors.New("no merges after the header line")
	}
	vocab := make(map[string]int32, 512+len(pairs)+2)
	id := int32(0)
	add := func(s string) {
		vocab[s] = id // later duplicates win, as in the reference dict
		id++
	}
	for _, b := range byteOrder {
		add(string(byteUnicode[b]))
	}
	for _, b := range byteOrder {
		add(string(byteUnicode[b]) + "</w>")
	}
	for _, p := range pairs {
		add(p[0] + p[1])
	}
	add(sotText)
	add(eotText)
	return build(vocab, pairs)
}

// twoFields finds the whitespace-separated fields of ln (Python's
// str.split()); it returns the byte ranges of the first two and the count
// (capped at 3).
func twoFields(ln []byte) (a, b [2]int, n int) {
	i := 0
	for n < 3 {
		for i < len(ln) && isASCIISpace(ln[i]) {
			i++
		}
		if i >= len(ln) {
			break
		}
		j := i
		for j < len(ln) && !isASCIISpace(ln[j]) {
			j++
		}
		switch n {
		case 0:
			a = [2]int{i, j}
		case 1:
			b = [2]int{i, j}
		}
		n++
		i = j
	}
	return a, b, n
}

func isASCIISpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func loadHFPair(vocabPath, mergesPath string) (*Tokenizer, error) {
	data, err := readLimited(vocabPath, false)
	if err != nil {
		return nil, err
	}
	return loadHFPairData(vocabPath, data, mergesPath)
}

func loadHFPairData(vocabPath string, vocabData []byte, mergesPath string) (*Tokenizer, error) {
	mdata, err := readLimited(mergesPath, false)
	if err != nil {
		return nil, fmt.Errorf("%w (vocab.json needs merges.txt beside it)", err)
	}
	t, err := ParseHF(vocabData, mdata)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s + %s: %w", vocabPath, mergesPath, err)
	}
	return t, nil
}

// ParseHF builds a tokenizer from Hugging Face vocab.json (token -> id) and
// merges.txt ("#version" header, then "a b" per line).
func ParseHF(vocabJSON, mergesTxt []byte) (*Tokenizer, error) {
	var vocab map[string]int32
	if err := json.Unmarshal(vocabJSON, &vocab); err != nil {
		return nil, fmt.Errorf("vocab.json: %w", err)
	}
	var pairs [][2]string
	for i, ln := range strings.Split(string(mergesTxt), "\n") {
		ln = strings.TrimRight(ln, "\r")
		if i == 0 && strings.HasPrefix(ln, "#") {
			continue
		}
		f := strings.Fields(ln)
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 {
			return nil, fmt.Errorf("merges.txt line %d: %q is not two symbols", i+1, ln)
		}
		pairs = append(pairs, [2]string{f[0], f[1]})
	}
	return build(vocab, pairs)
}

func isTokenizerJSON(data []byte) bool {
	var probe struct {
		Model json.RawMessage `json:"model"`
	}
	if json.Unmarshal(data, &probe) != nil {
		return false
	}
	return len(probe.Model) > 0 && probe.Model[0] == '{'
}

// ParseTokenizerJSON builds a tokenizer from a Hugging Face tokenizer.json
// (model.vocab and model.merges, the merges written either as "a b" strings
// or as ["a", "b"] pairs; special tokens may also come from added_tokens).
func ParseTokenizerJSON(data []byte) (*Tokenizer, error) { return parseTokenizerJSON(data) }

func parseTokenizerJSON(data []byte) (*Tokenizer, error) {
	var doc struct {
		Model struct {
			Type   string            `json:"type"`
			Vocab  map[string]int32  `json:"vocab"`
			Merges []json.RawMessage `json:"merges"`
		} `json:"model"`
		AddedTokens []struct {
			ID      int32  `json:"id"`
			Content string `json:"content"`
		} `json:"added_tokens"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if doc.Model.Type != "" && doc.Model.Type != "BPE" {
		return nil, fmt.Errorf("model type %q, want BPE", doc.Model.Type)
	}
	if len(doc.Model.Vocab) == 0 {
		return nil, errors.New("model.vocab is missing or empty")
	}
	vocab := doc.Model.Vocab
	for _, a := range doc.AddedTokens {
		if _, ok := vocab[a.Content]; !ok {
			vocab[a.Content] = a.ID
		}
	}
	pairs := make([][2]string, 0, len(doc.Model.Merges))
	for i, raw := range doc.Model.Merges {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			f := strings.Split(s, " ")
			if len(f) != 2 || f[0] == "" || f[1] == "" {
				return nil, fmt.Errorf("model.merges[%d]: %q is not two symbols", i, s)
			}
			pairs = append(pairs, [2]string{f[0], f[1]})
			continue
		}
		var p []string
		if err := json.Unmarshal(raw, &p); err != nil || len(p) != 2 {
			return nil, fmt.Errorf("model.merges[%d]: want \"a b\" or [a, b], got %s", i, raw)
		}
		pairs = append(pairs, [2]string{p[0], p[1]})
	}
	return build(vocab, pairs)
}

// build checks the vocabulary and compiles the merge table.
func build(vocab map[string]int32, pairs [][2]string) (*Tokenizer, error) {
	maxID := int32(-1)
	for tok, id := range vocab {
		if id < 0 {
			return nil, fmt.Errorf("token %q has negative id %d", tok, id)
		}
		if id > maxID {
			maxID = id
		}
	}
	if int(maxID) >= 1<<24 {
		return nil, fmt.Errorf("id %d is implausibly large", maxID)
	}
	t := &Tokenizer{
		tokens: make([]string, maxID+1),
		vocab:  vocab,
		merges: make(map[uint64]merge, len(pairs)),
		cache:  make(map[string][]int32),
	}
	for tok, id := range vocab {
		if t.tokens[id] != "" && t.tokens[id] != tok {
			// Keep a deterministic choice: the lexically smaller token.
			if tok > t.tokens[id] {
				continue
			}
		}
		t.tokens[id] = tok
	}
	for b := 0; b < 256; b++ {
		s := string(byteUnicode[b])
		id, ok := vocab[s]
		if !ok {
			return nil, fmt.Errorf("byte symbol %q (byte 0x%02x) missing from the vocabulary", s, b)
		}
		t.byteID[b] = id
		id, ok = vocab[s+"</w>"]
		if !ok {
			return nil, fmt.Errorf("byte symbol %q missing from the vocabulary", s+"</w>")
		}
		t.byteEnd[b] = id
	}
	var ok bool
	if t.sot, ok = vocab[sotText]; !ok {
		return nil, fmt.Errorf("%s missing from the vocabulary", sotText)
	}
	if t.eot, ok = vocab[eotText]; !ok {
		return nil, fmt.Errorf("%s missing from the vocabulary", eotText)
	}
	for rank, p := range pairs {
		a, okA := vocab[p[0]]
		b, okB := vocab[p[1]]
		c, okC := vocab[p[0]+p[1]]
		if !okA || !okB || !okC {
			// Such a merge can never apply (its parts never form) or would
			// fail in the reference; it is skipped only if unreachable.
			if okA && okB {
				return nil, fmt.Errorf("merge %d %q %q: result %q missing from the vocabulary", rank, p[0], p[1], p[0]+p[1])
			}
			continue
		}
		t.merges[pairKey(a, b)] = merge{rank: int32(rank), id: c}
	}
	return t, nil
}
