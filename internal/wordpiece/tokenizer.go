package wordpiece

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Options selects the tokenizer variant.
type Options struct {
	// Lowercase applies Python's str.lower to each word (do_lower_case).
	Lowercase bool
	// StripAccents decomposes each word (NFD) and drops the nonspacing
	// marks (Mn). cn_clip and HF's default (strip_accents null) do it
	// exactly when Lowercase is set.
	StripAccents bool
	// ChineseChars puts spaces around every CJK ideograph
	// (tokenize_chinese_chars).
	ChineseChars bool
	// MaxInputCharsPerWord turns longer words into [UNK]: 200 in cn_clip,
	// 100 in Hugging Face's WordpieceTokenizer. 0 means 200.
	MaxInputCharsPerWord int
	// HF selects Hugging Face BertTokenizer behaviour where it differs from
	// cn_clip: every character of a category C* (not only Cc/Cf) is removed,
	// the text is NFC-normalised after the CJK spacing, and the special
	// token strings ([CLS], [SEP], [PAD], [UNK], [MASK]) found in the text
	// stay single tokens instead of being split as punctuation.
	HF bool
}

// CNCLIPOptions returns the options of cn_clip.clip.tokenize
// (FullTokenizer(do_lower_case=True)).
func CNCLIPOptions() Options {
	return Options{Lowercase: true, StripAccents: true, ChineseChars: true, MaxInputCharsPerWord: 200}
}

// Tokenizer is a BERT tokenizer over a vocabulary.
type Tokenizer struct {
	Vocab *Vocab
	Opts  Options
}

// New returns a tokenizer.
func New(v *Vocab, o Options) *Tokenizer {
	if o.MaxInputCharsPerWord <= 0 {
		o.MaxInputCharsPerWord = 200
	}
	return &Tokenizer{Vocab: v, Opts: o}
}

// Clean is the BasicTokenizer's _clean_text: it drops U+0000, U+FFFD
// (and so invalid UTF-8) and control characters (categories Cc and Cf, or
// every C* with Options.HF) except tab, newline and carriage return, and
// turns those three and every Zs character into a space.
func (t *Tokenizer) Clean(text string) string {
	var b strings.Builder
	b.Grow(len(text))
	for _, r := range text {
		switch {
		case r == 0 || r == utf8.RuneError:
		case r == ' ' || r == '\t' || r == '\n' || r == '\r' || unicode.Is(unicode.Zs, r):
			b.WriteByte(' ')
		case t.isControl(r):
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func (t *Tokenizer) isControl(r rune) bool {
	if r == '\t' || r == '\n' || r == '\r' {
		return false
	}
	if unicode.Is(unicode.Cc, r) || unicode.Is(unicode.Cf, r) {
		return true
	}
	if !t.Opts.HF {
		return false
	}
	// Python's category starts with "C": also Co, Cs and unassigned (Cn).
	return unicode.Is(unicode.Co, r) || unicode.Is(unicode.Cs, r) || !unicode.In(r,
		unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Z, unicode.C)
}

// IsChinese reports whether r is in the CJK ideograph blocks BERT spaces
// out (not kana, Hangul or CJK punctuation).
func IsChinese(r rune) bool {
	return (r >= 0x4E00 && r <= 0x9FFF) ||
		(r >= 0x3400 && r <= 0x4DBF) ||
		(r >= 0x20000 && r <= 0x2A6DF) ||
		(r >= 0x2A700 && r <= 0x2B73F) ||
		(r >= 0x2B740 && r <= 0x2B81F) ||
		(r >= 0x2B820 && r <= 0x2CEAF) ||
		(r >= 0xF900 && r <= 0xFAFF) ||
		(r >= 0x2F800 && r <= 0x2FA1F)
}

// SpaceChinese puts a space before and after every CJK ideograph.
func SpaceChinese(text string) string {
	var b strings.Builder
	b.Grow(len(text))
	for _, r := range text {
		if IsChinese(r) {
			b.WriteByte(' ')
			b.WriteRune(r)
			b.WriteByte(' ')
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// IsPunct reports whether BERT splits r off as punctuation: every
// non-alphanumeric printable ASCII character and every Unicode P*.
func IsPunct(r rune) bool {
	if (r >= 33 && r <= 47) || (r >= 58 && r <= 64) || (r >= 91 && r <= 96) || (r >= 123 && r <= 126) {
		return true
	}
	return unicode.IsPunct(r)
}

// Fields splits on runs of whitespace as Python's str.split() does.
func Fields(s string) []string { return strings.FieldsFunc(s, isPySpace) }

// isPySpace is Python's str.isspace for one character.
func isPySpace(r rune) bool {
	switch {
	case r >= 0x09 && r <= 0x0D, r >= 0x1C && r <= 0x20, r == 0x85, r == 0xA0, r == 0x1680,
		r >= 0x2000 && r <= 0x200A, r == 0x2028, r == 0x2029, r == 0x202F, r == 0x205F, r == 0x3000:
		return true
	}
	return false
}

// Normalize lower-cases and strips accents from one word as configured.
func (t *Tokenizer) Normalize(word string) string {
	if t.Opts.Lowercase {
		word = PyLower(word)
	}
	if t.Opts.StripAccents {
		word = StripAccents(word)
	}
	return word
}

// StripAccents is NFD followed by removal of every Mn character.
func StripAccents(s string) string {
	d := norm.NFD.String(s)
	var b strings.Builder
	b.Grow(len(d))
	for _, r := range d {
		if !unicode.Is(unicode.Mn, r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// SplitPunct splits a word into runs of non-punctuation and single
// punctuation characters (_run_split_on_punc).
func SplitPunct(word string) []string {
	var out []string
	start := -1
	for i, r := range word {
		if IsPunct(r) {
			if start >= 0 {
				out = append(out, word[start:i])
				start = -1
			}
			out = append(out, string(r))
		} else if start < 0 {
			start = i
		}
	}
	if start >= 0 {
		out = append(out, word[start:])
	}
	return out
}

// Stages records every step of BasicTokenize for one text.
type Stages struct {
	Clean, ChineseSpaced string
	Words                []string // whitespace split
	Normalized           []string // per word, lowered and stripped
	Basic                []string // after punctuation splitting
}

// BasicStages runs the BasicTokenizer on text and returns every stage.
// With Options.HF the special token strings are not treated here (see
// Tokenize).
func (t *Tokenizer) BasicStages(text string) Stages {
	var s Stages
	s.Clean = t.Clean(text)
	s.ChineseSpaced = s.Clean
	if t.Opts.ChineseChars {
		s.ChineseSpaced = SpaceChinese(s.Clean)
	}
	spaced := s.ChineseSpaced
	if t.Opts.HF {
		spaced = norm.NFC.String(spaced)
	}
	s.Words = Fields(spaced)
	for _, w := range s.Words {
		n := t.Normalize(w)
		s.Normalized = append(s.Normalized, n)
		for _, p := range SplitPunct(n) {
			s.Basic = append(s.Basic, Fields(p)...)
		}
	}
	return s
}

// BasicTokenize returns the BasicTokenizer's tokens.
func (t *Tokenizer) BasicTokenize(text string) []string { return t.BasicStages(text).Basic }

// WordPieces splits one basic token greedily into the longest vocabulary
// pieces from the left, continuation pieces prefixed "##". A word longer
// than MaxInputCharsPerWord code points, or one with a position where no
// piece matches, becomes the single piece [UNK].
func (t *Tokenizer) WordPieces(word string) []string {
	runes := []rune(word)
	if len(runes) == 0 {
		return nil
	}
	unk := []string{UNKToken}
	if len(runes) > t.Opts.MaxInputCharsPerWord {
		return unk
	}
	var out []string
	var buf []byte
	for start := 0; start < len(runes); {
		end := min(len(runes), start+t.Vocab.maxRunes)
		found := false
		for ; end > start; end-- {
			buf = buf[:0]
			if start > 0 {
				buf = append(buf, "##"...)
			}
			for _, r := range runes[start:end] {
				buf = utf8.AppendRune(buf, r)
			}
			if _, ok := t.Vocab.ids[string(buf)]; ok {
				out = append(out, string(buf))
				found = true
				break
			}
		}
		if !found {
			return unk
		}
		start = end
	}
	return out
}

// Tokenize returns the WordPiece tokens of text (no [CLS]/[SEP]).
func (t *Tokenizer) Tokenize(text string) []string {
	var out []string
	for _, seg := range t.segments(text) {
		if seg.special {
			out = append(out, seg.text)
			continue
		}
		for _, w := range t.BasicTokenize(seg.text) {
			out = append(out, t.WordPieces(w)...)
		}
	}
	return out
}

type segment struct {
	text    string
	special bool
}

// segments splits text around special token strings (HF only), leftmost
// first (the earliest-listed token on ties).
func (t *Tokenizer) segments(text string) []segment {
	if !t.Opts.HF {
		return []segment{{text: text}}
	}
	var specials []string
	for _, s := range []string{CLSToken, SEPToken, PADToken, UNKToken, MASKToken} {
		if _, ok := t.Vocab.ids[s]; ok {
			specials = append(specials, s)
		}
	}
	// next[i] is the absolute index of the next occurrence of specials[i]
	// at or after pos (-1: none left).
	next := make([]int, len(specials))
	for i, s := range specials {
		next[i] = strings.Index(text, s)
	}
	var out []segment
	pos := 0
	for {
		at, which := -1, -1
		for i, s := range specials {
			if next[i] >= 0 && next[i] < pos {
				if j := strings.Index(text[pos:], s); j >= 0 {
					next[i] = pos + j
				} else {
					next[i] = -1
				}
			}
			if next[i] >= 0 && (at < 0 || next[i] < at) {
				at, which = next[i], i
			}
		}
		if at < 0 {
			if pos < len(text) {
				out = append(out, segment{text: text[pos:]})
			}
			return out
		}
		if at > pos {
			out = append(out, segment{text: text[pos:at]})
		}
		out = append(out, segment{text: specials[which], special: true})
		pos = at + len(specials[which])
	}
}

// Encode returns the ids of text's WordPiece tokens (no [CLS]/[SEP], not
// truncated).
func (t *Tokenizer) Encode(text string) []int32 {
	toks := t.Tokenize(text)
	ids := make([]int32, len(toks))
	for i, s := range toks {
		id, ok := t.Vocab.ids[s]
		if !ok {
			id = t.Vocab.UNK
		}
		ids[i] = id
	}
	return ids
}

// EncodeRow returns the model input row for text: [CLS], the first
// contextLength-2 piece ids, [SEP], then [PAD] up to contextLength, as
// cn_clip.clip.tokenize does. truncated reports whether pieces were cut.
func (t *Tokenizer) EncodeRow(text string, contextLength int) (row []int32, truncated bool, err error) {
	if contextLength < 2 {
		return nil, false, fmt.Errorf("wordpiece: context length %d leaves no room for [CLS] and [SEP]", contextLength)
	}
	ids := t.Encode(text)
	if len(ids) > contextLength-2 {
		ids, truncated = ids[:contextLength-2], true
	}
	row = make([]int32, contextLength)
	for i := range row {
		row[i] = t.Vocab.PAD
	}
	row[0] = t.Vocab.CLS
	copy(row[1:], ids)
	row[len(ids)+1] = t.Vocab.SEP
	return row, truncated, nil
}

// EncodeBatch encodes every text with EncodeRow.
func (t *Tokenizer) EncodeBatch(texts []string, contextLength int) (rows [][]int32, truncated []bool, err error) {
	rows = make([][]int32, len(texts))
	truncated = make([]bool, len(texts))
	for i, s := range texts {
		rows[i], truncated[i], err = t.EncodeRow(s, contextLength)
		if err != nil {
			return nil, nil, err
		}
	}
	return rows, truncated, nil
}

// PreprocessText is cn_clip's _preprocess_text, which its data pipelines
// and zero-shot prompts apply before tokenize: Python lower-casing of the
// whole text, then curly double quotes (“ ”) replaced by '"'.
func PreprocessText(text string) string {
	return strings.NewReplacer("\u201c", `"`, "\u201d", `"`).Replace(PyLower(text))
}
