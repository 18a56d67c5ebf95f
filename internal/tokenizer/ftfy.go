package tokenizer

import (
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// FixText reproduces ftfy.fix_text (ftfy 6.3.1, default configuration) for
// the cases CLIP's tokenizer meets in practice: HTML entities outside of
// text that contains '<', UTF-8 mojibake read as Latin-1 or Windows-1252,
// C1 controls, Latin ligatures, full- and half-width forms, curly quotes,
// terminal escapes, control characters, line breaks and NFC.
//
// As in ftfy, the text is fixed one line at a time, and once a line contains
// '<' HTML entities are left alone in it and in every later line.
//
// Not reproduced: mojibake in encodings other than Latin-1 and
// Windows-1252, the partial "inconsistent UTF-8" repair, restore_byte_a0,
// CESU-8 decoding, and ftfy's full badness heuristic (any line that
// re-encodes into valid, different UTF-8 is taken as mojibake).
func FixText(text string) string {
	if !utf8.ValidString(text) {
		text = strings.ToValidUTF8(text, "\ufffd")
	}
	if isASCIIPlain(text) {
		return text
	}
	unescape := true
	var out strings.Builder
	out.Grow(len(text))
	for len(text) > 0 {
		end := strings.IndexByte(text, '\n') + 1
		if end == 0 {
			end = len(text)
		}
		seg := text[:end]
		text = text[end:]
		if unescape && strings.IndexByte(seg, '<') >= 0 {
			unescape = false
		}
		out.WriteString(fixSegment(seg, unescape))
	}
	return out.String()
}

// isASCIIPlain reports whether ftfy would leave s unchanged because it is
// printable ASCII (plus tab and newline) without '&' or an escape.
func isASCIIPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x7f || (c < 0x20 && c != '\t' && c != '\n') || c == '&' {
			return false
		}
	}
	return true
}

func fixSegment(text string, unescape bool) string {
	for iter := 0; iter < 100; iter++ {
		orig := text
		if unescape {
			text = ftfyUnescapeHTML(text)
		}
		text = fixEncoding(text)
		text = fixC1Controls(text)
		text = mapRunes(text, charFixes)
		text = removeTerminalEscapes(text)
		text = mapRunes(text, dropControl)
		text = fixLineBreaks(text)
		text = norm.NFC.String(text)
		if text == orig {
			break
		}
	}
	return text
}

// mapRunes replaces each rune for which f reports a replacement.
func mapRunes(s string, f func(rune) (string, bool)) string {
	for i, r := range s {
		if _, ok := f(r); !ok {
			continue
		}
		var b strings.Builder
		b.Grow(len(s))
		b.WriteString(s[:i])
		for _, r := range s[i:] {
			if rep, ok := f(r); ok {
				b.WriteString(rep)
			} else {
				b.WriteRune(r)
			}
		}
		return b.String()
	}
	return s
}

// ftfyUnescapeHTML is ftfy.fixes.unescape_html: every "&name;" or "&#...;"
// of at most 24 alphanumerics that is a complete HTML5 reference is decoded;
// an all-caps "&NAME;" whose lowercase form is an entity decodes to that
// entity's uppercase.
func ftfyUnescapeHTML(s string) string {
	if strings.IndexByte(s, '&') < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for {
		i := strings.IndexByte(s, '&')
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		s = s[i:]
		j := 1
		if j < len(s) && s[j] == '#' {
			j++
		}
		k := j
		for k < len(s) && k-j < 24 && isASCIIAlnum(s[k]) {
			k++
		}
		if k == j || k >= len(s) || s[k] != ';' {
			b.WriteByte('&')
			s = s[1:]
			continue
		}
		ref := s[:k+1]
		s = s[k+1:]
		b.WriteString(ftfyEntity(ref))
	}
}

func isASCIIAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func ftfyEntity(ref string) string {
	if strings.HasPrefix(ref, "&#") {
		u := HTMLUnescape(ref)
		if strings.IndexByte(u, ';') >= 0 {
			return ref
		}
		return u
	}
	name := ref[1:]
	if v, ok := namedEntity(name); ok {
		return v
	}
	lower := strings.ToLower(name)
	// ftfy only adds "&NAME;" where Python's html.unescape leaves it alone
	// (so not "&GTCC;", which unescapes as "&GT" + "CC;").
	if lower != name && strings.ToUpper(name) == name && HTMLUnescape(ref) == ref {
		if v, ok := namedEntity(lower); ok {
			return pyUpper(v)
		}
	}
	return ref
}

// pyUpper is Python's str.upper() for entity values: simple uppercasing
// plus the special full mappings that entity values can need.
func pyUpper(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case 0xdf:
			b.WriteString("SS")
		case 0xfb00:
			b.WriteString("FF")
		case 0xfb01:
			b.WriteString("FI")
		case 0xfb02:
			b.WriteString("FL")
		case 0xfb03:
			b.WriteString("FFI")
		case 0xfb04:
			b.WriteString("FFL")
		case 0x149:
			b.WriteString("\u02bcN")
		default:
			b.WriteString(strings.ToUpper(string(r)))
		}
	}
	return b.String()
}

// Windows-1252 bytes 0x80..0x9F; the five undefined ones map to themselves
// as in ftfy's "sloppy" codec.
var cp1252High = c1Replacements

// fixC1Controls decodes each C1 control character as Windows-1252.
func fixC1Controls(s string) string {
	return mapRunes(s, func(r rune) (string, bool) {
		if r >= 0x80 && r <= 0x9f {
			return string(cp1252High[r-0x80]), true
		}
		return "", false
	})
}

// fixEncoding is ftfy's fix_encoding restricted to Latin-1 and
// sloppy Windows-1252 mojibake of UTF-8: while the text looks like mojibake
// and re-encodes into valid UTF-8, decode it.
func fixEncoding(text string) string {
	for iter := 0; iter < 16; iter++ {
		fixed, ok := fixEncodingStep(text)
		if !ok || fixed == text {
			return text
		}
		text = fixed
	}
	return text
}

func fixEncodingStep(text string) (string, bool) {
	if !looksLikeMojibake(text) {
		return text, false
	}
	for _, enc := range []func(rune) (byte, bool){encodeLatin1, encodeSloppy1252} {
		b, ok := encodeSingleByte(text, enc)
		if !ok {
			continue
		}
		b = replaceLossySequences(b)
		if utf8.Valid(b) {
			return string(b), true
		}
	}
	return text, false
}

// looksLikeMojibake reports whether some character that Windows-1252 or
// Latin-1 decodes from a UTF-8 lead byte is followed by one decoded from a
// UTF-8 continuation byte.
func looksLikeMojibake(s string) bool {
	prevLead := false
	for _, r := range s {
		b, ok := encodeSloppy1252(r)
		if !ok {
			b, ok = encodeLatin1(r)
		}
		if ok && prevLead && b >= 0x80 && b <= 0xbf {
			return true
		}
		prevLead = ok && b >= 0xc2 && b <= 0xf4
	}
	return false
}

func encodeSingleByte(s string, enc func(rune) (byte, bool)) ([]byte, bool) {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		b, ok := enc(r)
		if !ok {
			return nil, false
		}
		out = append(out, b)
	}
	return out, true
}

func encodeLatin1(r rune) (byte, bool) {
	if r < 0x100 {
		return byte(r), true
	}
	return 0, false
}

// encodeSloppy1252 encodes r in ftfy's sloppy-windows-1252: Windows-1252
// with the undefined bytes as their Latin-1 characters and U+FFFD as 0x1A.
func encodeSloppy1252(r rune) (byte, bool) {
	switch {
	case r == 0xfffd:
		return 0x1a, true
	case r < 0x80 || (r >= 0xa0 && r < 0x100):
		return byte(r), true
	}
	for i, c := range cp1252High {
		if c == r {
			return byte(0x80 + i), true
		}
	}
	return 0, false
}

// replaceLossySequences replaces each 0x1A byte (a U+FFFD from the sloppy
// codec), together with the incomplete UTF-8 sequence it ends, by the UTF-8
// encoding of U+FFFD.
func replaceLossySequences(b []byte) []byte {
	if !containsByte(b, 0x1a) {
		return b
	}
	out := make([]byte, 0, len(b)+8)
	for i := 0; i < len(b); i++ {
		if b[i] == 0x1a {
			out = append(out, 0xef, 0xbf, 0xbd)
			continue
		}
		if n := lossyLen(b[i:]); n > 0 {
			out = append(out, 0xef, 0xbf, 0xbd)
			i += n - 1
			continue
		}
		out = append(out, b[i])
	}
	return out
}

// lossyLen returns the length of a UTF-8 sequence at the start of b in which
// at least one continuation byte was replaced by 0x1A, or 0.
func lossyLen(b []byte) int {
	var need int
	switch c := b[0]; {
	case c >= 0xc2 && c <= 0xdf:
		need = 1
	case c >= 0xe0 && c <= 0xef:
		need = 2
	case c >= 0xf0 && c <= 0xf4:
		need = 3
	default:
		return 0
	}
	if len(b) < need+1 {
		return 0
	}
	lossy := false
	for k := 1; k <= need; k++ {
		switch {
		case b[k] == 0x1a:
			lossy = true
		case b[k] >= 0x80 && b[k] <= 0xbf:
		default:
			return 0
		}
	}
	if !lossy {
		return 0
	}
	return need + 1
}

func containsByte(b []byte, c byte) bool {
	for _, x := range b {
		if x == c {
			return true
		}
	}
	return false
}

// charFixes applies ligature, widthForm and uncurl in that order (each is
// a per-character mapping, so one pass composes them).
func charFixes(r rune) (string, bool) {
	if r < 0x132 {
		return "", false
	}
	if s, ok := ligature(r); ok {
		// Only U+0149 expands to a character a later step changes (U+02BC).
		if r == 0x149 {
			return "'n", true
		}
		return s, true
	}
	if s, ok := widthForm(r); ok {
		// No NFKC form of U+FF01..U+FFEF is a curly quote.
		return s, true
	}
	return uncurl(r)
}

// ligature is ftfy's LIGATURES table.
func ligature(r rune) (string, bool) {
	switch r {
	case 0x132:
		return "IJ", true
	case 0x133:
		return "ij", true
	case 0x149:
		return "\u02bcn", true
	case 0x1f1:
		return "DZ", true
	case 0x1f2:
		return "Dz", true
	case 0x1f3:
		return "dz", true
	case 0x1c4:
		return "D\u017d", true
	case 0x1c5:
		return "D\u017e", true
	case 0x1c6:
		return "d\u017e", true
	case 0x1c7:
		return "LJ", true
	case 0x1c8:
		return "Lj", true
	case 0x1c9:
		return "lj", true
	case 0x1ca:
		return "NJ", true
	case 0x1cb:
		return "Nj", true
	case 0x1cc:
		return "nj", true
	case 0xfb00:
		return "ff", true
	case 0xfb01:
		return "fi", true
	case 0xfb02:
		return "fl", true
	case 0xfb03:
		return "ffi", true
	case 0xfb04:
		return "ffl", true
	case 0xfb05:
		return "\u017ft", true
	case 0xfb06:
		return "st", true
	}
	return "", false
}

// widthForm is ftfy's WIDTH_MAP: U+3000 becomes a space and every
// character in U+FF01..U+FFEF becomes its NFKC form where that differs.
func widthForm(r rune) (string, bool) {
	if r == 0x3000 {
		return " ", true
	}
	if r < 0xff01 || r > 0xffef {
		return "", false
	}
	s := string(r)
	n := norm.NFKC.String(s)
	if n == s {
		return "", false
	}
	return n, true
}

// uncurl replaces curly single quotes (and U+02BC) with ' and curly double
// quotes with ".
func uncurl(r rune) (string, bool) {
	switch {
	case r == 0x2bc || (r >= 0x2018 && r <= 0x201b):
		return "'", true
	case r >= 0x201c && r <= 0x201f:
		return "\"", true
	}
	return "", false
}

// dropControl is ftfy's CONTROL_CHARS: C0 controls except tab, LF, FF and
// CR, DEL, the deprecated format characters U+206A..U+206F, the BOM and the
// interlinear annotation characters U+FFF9..U+FFFC.
func dropControl(r rune) (string, bool) {
	switch {
	case r <= 0x08, r == 0x0b, r >= 0x0e && r <= 0x1f, r == 0x7f,
		r >= 0x206a && r <= 0x206f, r == 0xfeff, r >= 0xfff9 && r <= 0xfffc:
		return "", true
	}
	return "", false
}

// removeTerminalEscapes removes ANSI escapes ESC '[' [0-9;]* [A-Za-z].
func removeTerminalEscapes(s string) string {
	i := strings.IndexByte(s, 0x1b)
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i >= 0 {
		b.WriteString(s[:i])
		s = s[i:]
		j := 1
		if j < len(s) && s[j] == '[' {
			j++
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == ';') {
				j++
			}
			if j < len(s) && (s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z') {
				s = s[j+1:]
				i = strings.IndexByte(s, 0x1b)
				continue
			}
		}
		b.WriteByte(0x1b)
		s = s[1:]
		i = strings.IndexByte(s, 0x1b)
	}
	b.WriteString(s)
	return b.String()
}

// fixLineBreaks turns CRLF, CR, U+2028, U+2029 and U+0085 into LF.
func fixLineBreaks(s string) string {
	if !strings.ContainsAny(s, "\r\u2028\u2029\u0085") {
		return s
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.NewReplacer("\r", "\n", "\u2028", "\n", "\u2029", "\n", "\u0085", "\n").Replace(s)
}
