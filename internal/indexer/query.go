package indexer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"

	"github.com/goclip/goclip/clip"
)

// Term is one weighted text of a combined query.
type Term struct {
	Text   string
	Weight float64
}

// ParseQuery parses an rclip-style combined query: texts joined by + and
// -, each optionally weighted as N*text, texts quoted with " or ' or
// written as bare words:
//
//	a dog on the beach
//	"beach" + "sunset" - "people"
//	2*"beach" + 0.5 * sunset - 'people in the crowd'
//
// A + or - is an operator only where a term starts (after spaces, a
// quote, or at the beginning), so hyphenated-words stay text.
func ParseQuery(q string) ([]Term, error) {
	toks, err := lexQuery(q)
	if err != nil {
		return nil, err
	}
	var terms []Term
	sign := 1.0
	i := 0
	for i < len(toks) {
		t := toks[i]
		if len(terms) > 0 || t.op != 0 {
			// expect an operator between terms (optional before the first)
			switch t.op {
			case '+':
				sign = 1
			case '-':
				sign = -1
			default:
				return nil, fmt.Errorf("query %q: expected + or - before %s", q, t)
			}
			i++
			if i == len(toks) {
				return nil, fmt.Errorf("query %q: nothing after %c", q, t.op)
			}
			t = toks[i]
		}
		w := 1.0
		if t.num {
			// the lexer marks a number as a weight only before a '*'
			w, _ = strconv.ParseFloat(t.text, 64)
			i += 2
			if i >= len(toks) {
				return nil, fmt.Errorf("query %q: nothing after %s*", q, t.text)
			}
			t = toks[i]
		}
		if t.op != 0 || t.num {
			return nil, fmt.Errorf("query %q: expected text, got %s", q, t)
		}
		text := t.text
		// bare words run together until the next operator
		for !t.quoted && i+1 < len(toks) && toks[i+1].op == 0 && !toks[i+1].quoted && !toks[i+1].num {
			i++
			t = toks[i]
			text += " " + t.text
		}
		if strings.TrimSpace(text) == "" {
			return nil, fmt.Errorf("query %q: empty text", q)
		}
		if math.IsInf(w, 0) || math.IsNaN(w) {
			return nil, fmt.Errorf("query %q: bad weight", q)
		}
		terms = append(terms, Term{text, sign * w})
		i++
	}
	if len(terms) == 0 {
		return nil, errors.New("empty query")
	}
	return terms, nil
}

type qtok struct {
	text   string
	op     rune // '+', '-', '*' or 0
	quoted bool
	num    bool // a number directly followed by '*'
}

func (t qtok) String() string {
	if t.op != 0 {
		return fmt.Sprintf("%q", string(t.op))
	}
	return fmt.Sprintf("%q", t.text)
}

func lexQuery(q string) ([]qtok, error) {
	var out []qtok
	r := []rune(q)
	i := 0
	for i < len(r) {
		c := r[i]
		switch {
		case unicode.IsSpace(c):
			i++
		case c == '"' || c == '\'':
			j := i + 1
			for j < len(r) && r[j] != c {
				j++
			}
			if j == len(r) {
				return nil, fmt.Errorf("query %q: unterminated %c", q, c)
			}
			out = append(out, qtok{text: string(r[i+1 : j]), quoted: true})
			i = j + 1
		case c == '+' || c == '-' || c == '*':
			out = append(out, qtok{op: c})
			i++
		default:
			j := i
			for j < len(r) && !unicode.IsSpace(r[j]) && r[j] != '"' && r[j] != '*' {
				j++
			}
			word := string(r[i:j])
			k := j
			for k < len(r) && unicode.IsSpace(r[k]) {
				k++
			}
			_, err := strconv.ParseFloat(word, 64)
			isNum := err == nil && k < len(r) && r[k] == '*'
			out = append(out, qtok{text: word, num: isNum})
			i = j
		}
	}
	return out, nil
}

// Combine returns the normalised weighted sum Σ wᵢ·normalise(vᵢ) of the
// term embeddings (and of images with weight 1), the vector a combined
// query searches with. It fails when the sum is zero.
func Combine(vecs [][]float32, weights []float64) ([]float32, error) {
	if len(vecs) == 0 || len(vecs) != len(weights) {
		return nil, errors.New("indexer: nothing to combine")
	}
	sum := make([]float64, len(vecs[0]))
	for i, v := range vecs {
		if len(v) != len(sum) {
			return nil, fmt.Errorf("indexer: embeddings of %d and %d values", len(sum), len(v))
		}
		var ss float64
		for _, x := range v {
			ss += float64(x) * float64(x)
		}
		if ss == 0 {
			continue
		}
		s := weights[i] / math.Sqrt(ss)
		for j, x := range v {
			sum[j] += s * float64(x)
		}
	}
	var ss float64
	for _, x := range sum {
		ss += x * x
	}
	if ss == 0 || math.IsNaN(ss) || math.IsInf(ss, 0) {
		return nil, errors.New("indexer: the query terms cancel out")
	}
	out := make([]float32, len(sum))
	for i, x := range sum {
		out[i] = float32(x / math.Sqrt(ss))
	}
	return out, nil
}

// EmbedQuery embeds a combined query — the weighted text terms and the
// image files (weight 1 each) — with m and combines them (see Combine).
func EmbedQuery(ctx context.Context, m *clip.Model, terms []Term, images []string) ([]float32, error) {
	var vecs [][]float32
	var weights []float64
	if len(terms) > 0 {
		texts := make([]string, len(terms))
		for i, t := range terms {
			texts[i] = t.Text
		}
		te, err := m.EncodeTexts(ctx, texts)
		if err != nil {
			return nil, err
		}
		for i, t := range terms {
			vecs = append(vecs, te[i])
			weights = append(weights, t.Weight)
		}
	}
	if len(images) > 0 {
		ie, err := m.EncodeImageFiles(ctx, images)
		if err != nil {
			return nil, err
		}
		for _, v := range ie {
			vecs = append(vecs, v)
			weights = append(weights, 1)
		}
	}
	return Combine(vecs, weights)
}
