package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

const (
	sotText = "<|startoftext|>"
	eotText = "<|endoftext|>"
)

// Pieces splits cleaned text the way the reference pattern
//
//	<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
//
// (compiled with regex.IGNORECASE) does with regex.findall: at each
// position the alternatives are tried in order; characters that no
// alternative matches (whitespace) are skipped.
func Pieces(text string) []string {
	var out []string
	forEachPiece(text, func(p string) { out = append(out, p) })
	return out
}

func forEachPiece(s string, emit func(string)) {
	i := 0
	for i < len(s) {
		if n := matchFold(s[i:], sotText); n > 0 {
			emit(s[i : i+n])
			i += n
			continue
		}
		if n := matchFold(s[i:], eotText); n > 0 {
			emit(s[i : i+n])
			i += n
			continue
		}
		if s[i] == '\'' {
			if n := contraction(s[i+1:]); n > 0 {
				emit(s[i : i+1+n])
				i += 1 + n
				continue
			}
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case unicode.IsLetter(r):
			j := i + size
			for j < len(s) {
				r2, sz := utf8.DecodeRuneInString(s[j:])
				if !unicode.IsLetter(r2) {
					break
				}
				j += sz
			}
			emit(s[i:j])
			i = j
		case unicode.IsNumber(r):
			emit(s[i : i+size])
			i += size
		case unicode.IsSpace(r):
			i += size
		default:
			// [^\s\p{L}\p{N}]+ is greedy: the special-token and contraction
			// alternatives are not retried inside the run.
			j := i + size
			for j < len(s) {
				r2, sz := utf8.DecodeRuneInString(s[j:])
				if unicode.IsLetter(r2) || unicode.IsNumber(r2) || unicode.IsSpace(r2) {
					break
				}
				j += sz
			}
			emit(s[i:j])
			i = j
		}
	}
}

// foldRune maps r to the representative of its simple case-folding class for
// the letters the pattern's literals use.
func foldRune(r rune) rune {
	switch r {
	case 0x17f: // LATIN SMALL LETTER LONG S
		return 's'
	case 0x212a: // KELVIN SIGN
		return 'k'
	}
	if r >= 'A' && r <= 'Z' {
		return r + 'a' - 'A'
	}
	return r
}

// matchFold returns the byte length of the case-insensitive match of lit
// (ASCII) at the start of s, or 0.
func matchFold(s, lit string) int {
	i := 0
	for k := 0; k < len(lit); k++ {
		if i >= len(s) {
			return 0
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if foldRune(r) != rune(lit[k]) {
			return 0
		}
		i += size
	}
	return i
}

// contraction returns the byte length of s, re, ve, m, ll, d or t
// (case-insensitive) at the start of s, or 0. Alternatives are tried in the
// pattern's order.
func contraction(s string) int {
	for _, c := range [...]string{"s", "t", "re", "ve", "m", "ll", "d"} {
		if n := matchFold(s, c); n > 0 {
			return n
		}
	}
	return 0
}
