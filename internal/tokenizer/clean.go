package tokenizer

import (
	"html"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Clean runs the reference text cleaning of SimpleTokenizer.encode:
// ftfy.fix_text, html.unescape twice, strip, whitespace collapse, strip and
// Python's full Unicode lowercasing. Its result is what the pre-tokenizer
// splits.
func Clean(text string) string {
	return PyLower(WhitespaceClean(BasicClean(text)))
}

// BasicClean is the reference basic_clean: FixText, then html.unescape
// applied twice, then Python's str.strip().
func BasicClean(text string) string {
	return PyStrip(HTMLUnescape(HTMLUnescape(FixText(text))))
}

// WhitespaceClean is the reference whitespace_clean: every run of Unicode
// White_Space (the regex module's \s) becomes one space, then the result is
// stripped with Python's str.strip().
func WhitespaceClean(text string) string {
	if s, ok := whitespaceCleanASCII(text); ok {
		return s
	}
	var b strings.Builder
	b.Grow(len(text))
	inSpace := false
	for _, r := range text {
		if unicode.IsSpace(r) {
			if !inSpace {
				b.WriteByte(' ')
				inSpace = true
			}
			continue
		}
		inSpace = false
		b.WriteRune(r)
	}
	return PyStrip(b.String())
}

// whitespaceCleanASCII is WhitespaceClean for ASCII text; ok is false if
// text is not ASCII.
func whitespaceCleanASCII(text string) (string, bool) {
	clean := true
	prevSpace := true // a leading space also needs work
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c >= utf8.RuneSelf {
			return "", false
		}
		sp := c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f)
		if sp && (c != ' ' || prevSpace) {
			clean = false
		}
		prevSpace = sp
	}
	if clean && !prevSpace {
		return text, true
	}
	b := make([]byte, 0, len(text))
	inSpace := false
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c == ' ' || (c >= '\t' && c <= '\r') {
			if !inSpace {
				b = append(b, ' ')
				inSpace = true
			}
			continue
		}
		inSpace = false
		b = append(b, c)
	}
	return PyStrip(string(b)), true
}

// pyIsSpace reports whether Python's str.isspace() is true for r: Unicode
// White_Space plus the information separators U+001C..U+001F.
func pyIsSpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

// PyStrip is Python's str.strip() without arguments.
func PyStrip(s string) string {
	return strings.TrimFunc(s, pyIsSpace)
}

// PyLower is Python 3's str.lower(): full Unicode lowercasing, which differs
// from strings.ToLower for U+0130 (to "i" + U+0307) and for capital sigma in
// word-final position (to final sigma U+03C2).
func PyLower(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToLower(s)
	}
	rs := []rune(s)
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i, r := range rs {
		switch r {
		case 0x130:
			b.WriteString("i\u0307")
		case 0x3a3:
			if finalSigma(rs, i) {
				b.WriteRune(0x3c2)
			} else {
				b.WriteRune(0x3c3)
			}
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// finalSigma reports whether the capital sigma at rs[i] is in the
// Final_Sigma context: a cased letter before it (skipping case-ignorable
// characters) and no cased letter after it (same skipping).
func finalSigma(rs []rune, i int) bool {
	j := i - 1
	for j >= 0 && isCaseIgnorable(rs[j]) {
		j--
	}
	if j < 0 || !isCased(rs[j]) {
		return false
	}
	j = i + 1
	for j < len(rs) && isCaseIgnorable(rs[j]) {
		j++
	}
	return j == len(rs) || !isCased(rs[j])
}

func isCased(r rune) bool {
	return unicode.IsUpper(r) || unicode.IsLower(r) || unicode.IsTitle(r) ||
		unicode.Is(unicode.Other_Lowercase, r) || unicode.Is(unicode.Other_Uppercase, r)
}

func isCaseIgnorable(r rune) bool {
	switch r {
	case '\'', '.', ':', 0xb7, 0x387, 0x55f, 0x5f4, 0x2018, 0x2019, 0x2024,
		0x2027, 0xfe13, 0xfe52, 0xfe55, 0xff07, 0xff0e, 0xff1a:
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk)
}

// HTMLUnescape is Python's html.unescape: numeric character references
// (with the HTML5 replacements for C1 and invalid code points, and the
// removal of non-characters and most controls) and named references, with or
// without the trailing semicolon where HTML5 allows it.
func HTMLUnescape(s string) string {
	i := strings.IndexByte(s, '&')
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i >= 0 {
		b.WriteString(s[:i])
		s = s[i:] // s[0] == '&'
		repl, n := unescapeRef(s)
		b.WriteString(repl)
		s = s[n:]
		i = strings.IndexByte(s, '&')
	}
	b.WriteString(s)
	return b.String()
}

// unescapeRef decodes the reference at the start of s (s[0] == '&') and
// returns its replacement and how many bytes of s it consumed.
func unescapeRef(s string) (string, int) {
	if len(s) < 2 {
		return "&", 1
	}
	if s[1] == '#' {
		if r, n, ok := numericRef(s); ok {
			return r, n
		}
		return "&", 1
	}
	// Named: [^\t\n\f <&#;]{1,32};?
	end := 1
	count := 0
	for end < len(s) && count < 32 {
		r, size := utf8.DecodeRuneInString(s[end:])
		if r == '\t' || r == '\n' || r == '\f' || r == ' ' || r == '<' || r == '&' || r == '#' || r == ';' {
			break
		}
		end += size
		count++
	}
	if count == 0 {
		return "&", 1
	}
	if end < len(s) && s[end] == ';' {
		end++
	}
	name := s[1:end]
	if v, ok := namedEntity(name); ok {
		return v, end
	}
	// Longest prefix (at least two characters) that is a legacy name.
	rs := []rune(name)
	for x := len(rs) - 1; x > 1; x-- {
		p := string(rs[:x])
		if v, ok := namedEntity(p); ok {
			return v + name[len(p):], end
		}
	}
	return s[:end], end
}

// namedEntity looks name ("amp;" or "amp") up in the HTML5 named character
// reference table, using html.UnescapeString as the table.
func namedEntity(name string) (string, bool) {
	base := strings.TrimSuffix(name, ";")
	if base == "" {
		return "", false
	}
	for i := 0; i < len(base); i++ {
		c := base[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return "", false
		}
	}
	ref := "&" + name
	r := html.UnescapeString(ref)
	if r == ref {
		return "", false
	}
	if strings.HasSuffix(name, ";") {
		// A full match consumes the semicolon; a legacy-prefix match leaves
		// the rest of the name and the semicolon behind.
		if name == "semi;" || !strings.HasSuffix(r, ";") {
			return r, true
		}
		return "", false
	}
	// Legacy name without semicolon: a prefix match leaves alphanumerics.
	last, _ := utf8.DecodeLastRuneInString(r)
	if last < utf8.RuneSelf && (unicode.IsLetter(last) || unicode.IsDigit(last)) {
		return "", false
	}
	return r, true
}

// c1Replacements is the HTML5 table of numeric references 0x80..0x9F
// (Windows-1252; undefined positions map to themselves).
var c1Replacements = [32]rune{
	0x20ac, 0x81, 0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021,
	0x02c6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8d, 0x017d, 0x8f,
	0x90, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014,
	0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0x9d, 0x017e, 0x0178,
}

func numericRef(s string) (string, int, bool) {
	i := 2
	hex := false
	if i < len(s) && (s[i] == 'x' || s[i] == 'X') {
		hex = true
		i++
	}
	start := i
	for i < len(s) {
		c := s[i]
		if '0' <= c && c <= '9' || hex && ('a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			i++
			continue
		}
		break
	}
	if i == start {
		return "", 0, false
	}
	digits := s[start:i]
	if i < len(s) && s[i] == ';' {
		i++
	}
	base := 10
	if hex {
		base = 16
	}
	digits = strings.TrimLeft(digits, "0")
	num := uint64(0)
	big := len(digits) > 8
	if !big && digits != "" {
		v, err := strconv.ParseUint(digits, base, 64)
		if err != nil {
			big = true
		}
		num = v
	}
	switch {
	case big:
		return "\ufffd", i, true
	case num == 0:
		return "\ufffd", i, true
	case num == 0x0d:
		return "\r", i, true
	case num >= 0x80 && num <= 0x9f:
		return string(c1Replacements[num-0x80]), i, true
	case num >= 0xd800 && num <= 0xdfff, num > 0x10ffff:
		return "\ufffd", i, true
	case invalidCodepoint(rune(num)):
		return "", i, true
	}
	return string(rune(num)), i, true
}

// invalidCodepoint is Python's html._invalid_codepoints.
func invalidCodepoint(r rune) bool {
	switch {
	case r >= 0x1 && r <= 0x8, r == 0xb, r >= 0xe && r <= 0x1f, r >= 0x7f && r <= 0x9f,
		r >= 0xfdd0 && r <= 0xfdef:
		return true
	}
	return r&0xfffe == 0xfffe
}
