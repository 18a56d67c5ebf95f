// Package wordpiece is BERT's tokenizer: the BasicTokenizer (text
// cleaning, CJK splitting, lower-casing and accent stripping, punctuation
// splitting) followed by greedy longest-match WordPiece, exactly as
// Chinese-CLIP's cn_clip.clip.tokenize and Hugging Face's (slow)
// BertTokenizer compute it. Options select between the two.
package wordpiece

import (
	"fmt"
	"os"
	"strings"
	"unicode/utf8"
)

// The special tokens every BERT vocabulary must hold.
const (
	CLSToken  = "[CLS]"
	SEPToken  = "[SEP]"
	PADToken  = "[PAD]"
	UNKToken  = "[UNK]"
	MASKToken = "[MASK]"
)

// Vocab is a WordPiece vocabulary: token i is line i of vocab.txt.
type Vocab struct {
	tokens []string
	ids    map[string]int32
	// maxRunes is the length in code points of the longest token, "##"
	// prefix excluded for continuation pieces.
	maxRunes int

	// Ids of the special tokens. MASK is -1 when the vocabulary has none.
	CLS, SEP, PAD, UNK, MASK int32
}

// LoadVocab reads a vocab.txt file (one token per line).
func LoadVocab(path string) (*Vocab, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("wordpiece: %w", err)
	}
	return ParseVocab(path, b)
}

// ParseVocab parses the contents of a vocab.txt; name is used in errors.
// Each line is stripped of surrounding whitespace as cn_clip's load_vocab
// does (Python str.strip); when a token appears twice the later line wins
// the lookup, as in the reference dict. The vocabulary must hold [CLS],
// [SEP], [PAD] and [UNK].
func ParseVocab(name string, data []byte) (*Vocab, error) {
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("wordpiece: %s: vocabulary is not valid UTF-8", name)
	}
	v := &Vocab{ids: map[string]int32{}, MASK: -1}
	text := string(data)
	for len(text) > 0 {
		line := text
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			text = ""
		}
		tok := strings.TrimFunc(line, isPySpace)
		if len(v.tokens) >= 1<<31-1 {
			return nil, fmt.Errorf("wordpiece: %s: too many tokens", name)
		}
		v.ids[tok] = int32(len(v.tokens))
		v.tokens = append(v.tokens, tok)
		n := utf8.RuneCountInString(strings.TrimPrefix(tok, "##"))
		v.maxRunes = max(v.maxRunes, n)
	}
	var missing []string
	for _, s := range []struct {
		tok string
		id  *int32
	}{{CLSToken, &v.CLS}, {SEPToken, &v.SEP}, {PADToken, &v.PAD}, {UNKToken, &v.UNK}} {
		id, ok := v.ids[s.tok]
		if !ok {
			missing = append(missing, s.tok)
			continue
		}
		*s.id = id
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("wordpiece: %s: vocabulary of %d tokens lacks the special token(s) %s", name, len(v.tokens), strings.Join(missing, " "))
	}
	if id, ok := v.ids[MASKToken]; ok {
		v.MASK = id
	}
	return v, nil
}

// Len returns the number of tokens (lines).
func (v *Vocab) Len() int { return len(v.tokens) }

// ID returns the id of a token.
func (v *Vocab) ID(tok string) (int32, bool) {
	id, ok := v.ids[tok]
	return id, ok
}

// Token returns the token of an id ("" when out of range).
func (v *Vocab) Token(id int32) string {
	if id < 0 || int(id) >= len(v.tokens) {
		return ""
	}
	return v.tokens[id]
}
