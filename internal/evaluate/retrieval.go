package evaluate

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"
)

// Captions is an image–text retrieval set: every caption belongs to one
// image, an image may have several captions.
type Captions struct {
	Images    []string // image paths
	Texts     []string // captions
	TextImage []int    // TextImage[j] is the index of caption j's image
}

// CaptionOptions tunes ReadCaptions.
type CaptionOptions struct {
	// ImageRoot is prepended to relative image paths (default: the caption
	// file's folder).
	ImageRoot string
	// Split keeps only the images of this Karpathy split ("test", "val",
	// "train", "restval"); "" or "all" keeps every image. Files without
	// split fields ignore it.
	Split string
}

// ReadCaptions reads a caption file: Karpathy-style JSON (dataset_coco.json,
// dataset_flickr30k.json: {"images":[{"filepath","filename","split",
// "sentences":[{"raw"}]}]}), a JSON list of {"image","caption":[…]} (or
// "captions"), or text lines "image<TAB>caption" (an image's lines need
// not be adjacent).
func ReadCaptions(path string, o CaptionOptions) (*Captions, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("captions: %w", err)
	}
	if o.ImageRoot == "" {
		o.ImageRoot = filepath.Dir(path)
	}
	return ParseCaptions(data, path, o)
}

// ParseCaptions parses caption data (see ReadCaptions); name is used in
// errors.
func ParseCaptions(data []byte, name string, o CaptionOptions) (*Captions, error) {
	trim := bytes.TrimLeft(bytes.TrimPrefix(data, []byte("\ufeff")), " \t\r\n")
	var c *Captions
	var err error
	switch {
	case len(trim) > 0 && trim[0] == '{':
		c, err = parseKarpathy(trim, name, o.Split)
	case len(trim) > 0 && trim[0] == '[':
		c, err = parseJSONList(trim, name)
	default:
		c, err = parseTSV(data, name)
	}
	if err != nil {
		return nil, err
	}
	if len(c.Images) == 0 || len(c.Texts) == 0 {
		return nil, fmt.Errorf("%s: no captioned images", name)
	}
	for i, p := range c.Images {
		if !filepath.IsAbs(p) && o.ImageRoot != "" {
			c.Images[i] = filepath.Join(o.ImageRoot, p)
		}
	}
	return c, nil
}

type builder struct {
	c   Captions
	idx map[string]int
}

func (b *builder) add(image, text string) {
	if b.idx == nil {
		b.idx = map[string]int{}
	}
	i, ok := b.idx[image]
	if !ok {
		i = len(b.c.Images)
		b.idx[image] = i
		b.c.Images = append(b.c.Images, image)
	}
	b.c.Texts = append(b.c.Texts, text)
	b.c.TextImage = append(b.c.TextImage, i)
}

func parseKarpathy(data []byte, name, split string) (*Captions, error) {
	var doc struct {
		Images []struct {
			Filepath  string `json:"filepath"`
			Filename  string `json:"filename"`
			Split     string `json:"split"`
			Sentences []struct {
				Raw string `json:"raw"`
			} `json:"sentences"`
		} `json:"images"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if doc.Images == nil {
		return nil, fmt.Errorf("%s: JSON object without an \"images\" list (expected Karpathy format)", name)
	}
	if split == "all" {
		split = ""
	}
	splits := map[string]int{}
	hasSplit := false
	var b builder
	for i, im := range doc.Images {
		if im.Filename == "" {
			return nil, fmt.Errorf("%s: images[%d] has no filename", name, i)
		}
		if im.Split != "" {
			hasSplit = true
			splits[im.Split]++
		}
		if split != "" && im.Split != "" && im.Split != split {
			continue
		}
		p := filepath.Join(im.Filepath, im.Filename)
		if len(im.Sentences) == 0 {
			return nil, fmt.Errorf("%s: images[%d] (%s) has no sentences", name, i, p)
		}
		for _, s := range im.Sentences {
			b.add(p, strings.TrimSpace(s.Raw))
		}
	}
	if split != "" && hasSplit && len(b.c.Images) == 0 {
		var have []string
		for s, n := range splits {
			have = append(have, fmt.Sprintf("%s (%d)", s, n))
		}
		sort.Strings(have)
		return nil, fmt.Errorf("%s: no images in split %q; splits: %s", name, split, strings.Join(have, ", "))
	}
	return &b.c, nil
}

func parseJSONList(data []byte, name string) (*Captions, error) {
	var list []struct {
		Image    string          `json:"image"`
		Caption  json.RawMessage `json:"caption"`
		Captions json.RawMessage `json:"captions"`
	}
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var b builder
	for i, e := range list {
		if e.Image == "" {
			return nil, fmt.Errorf("%s: entry %d has no \"image\"", name, i)
		}
		raw := e.Caption
		if len(raw) == 0 {
			raw = e.Captions
		}
		var caps []string
		var one string
		if err := json.Unmarshal(raw, &caps); err != nil {
			if err2 := json.Unmarshal(raw, &one); err2 != nil || one == "" {
				return nil, fmt.Errorf("%s: entry %d (%s): \"caption\" must be a string or a list of strings", name, i, e.Image)
			}
			caps = []string{one}
		}
		if len(caps) == 0 {
			return nil, fmt.Errorf("%s: entry %d (%s) has no captions", name, i, e.Image)
		}
		for _, c := range caps {
			b.add(e.Image, strings.TrimSpace(c))
		}
	}
	return &b.c, nil
}

func parseTSV(data []byte, name string) (*Captions, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	var b builder
	line := 0
	for sc.Scan() {
		line++
		t := strings.TrimRight(sc.Text(), "\r")
		if line == 1 {
			t = strings.TrimPrefix(t, "\ufeff")
		}
		if strings.TrimSpace(t) == "" {
			continue
		}
		if !utf8.ValidString(t) {
			return nil, fmt.Errorf("%s:%d: not valid UTF-8", name, line)
		}
		img, text, ok := strings.Cut(t, "\t")
		if !ok {
			return nil, fmt.Errorf("%s:%d: no tab between image and caption", name, line)
		}
		img, text = strings.TrimSpace(img), strings.TrimSpace(text)
		if img == "" || text == "" {
			return nil, fmt.Errorf("%s:%d: empty image or caption", name, line)
		}
		b.add(img, text)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &b.c, nil
}

// RetrievalMetrics are CLIP_benchmark's zero-shot retrieval metrics, keyed
// as it keys them: "image_retrieval_recall@k" (text → image: a caption's
// image ranks in the top k images) and "text_retrieval_recall@k" (image →
// text: any of the image's captions ranks in the top k captions).
type RetrievalMetrics map[string]float64

// Retrieval scores image–text retrieval. images and texts are embeddings
// (normalised here); textImage[j] is caption j's image. Ranks break ties by
// index as Rank does. Images without captions count in neither direction
// (text → image ranks still range over them).
func Retrieval(images, texts [][]float32, textImage []int, ks []int) (RetrievalMetrics, error) {
	if len(texts) != len(textImage) {
		return nil, fmt.Errorf("evaluate: %d captions but %d caption→image links", len(texts), len(textImage))
	}
	ni := len(images)
	in := normalizeAll(images)
	tn := normalizeAll(texts)
	// scores[j][i] = cos(text j, image i)
	scores := make([][]float32, len(tn))
	for j, t := range tn {
		if textImage[j] < 0 || textImage[j] >= ni {
			return nil, fmt.Errorf("evaluate: caption %d belongs to image %d of %d", j, textImage[j], ni)
		}
		row := make([]float32, ni)
		for i, v := range in {
			row[i] = dot32(t, v)
		}
		scores[j] = row
	}
	// Best rank among an image's captions (image → text).
	capsOf := make([][]int, ni)
	for j, owner := range textImage {
		capsOf[owner] = append(capsOf[owner], j)
	}
	bestText := make([]int, ni)
	col := make([]float32, len(tn))
	for i := range ni {
		bestText[i] = -1
		if len(capsOf[i]) == 0 {
			continue
		}
		for j := range tn {
			col[j] = scores[j][i]
		}
		for _, j := range capsOf[i] {
			if r := Rank(col, j); bestText[i] < 0 || r < bestText[i] {
				bestText[i] = r
			}
		}
	}
	imgRank := make([]int, len(tn))
	for j := range tn {
		imgRank[j] = Rank(scores[j], textImage[j])
	}
	m := RetrievalMetrics{}
	for _, k := range ks {
		var hitT, nT, hitI int
		for _, r := range bestText {
			if r < 0 {
				continue
			}
			nT++
			if r < k {
				hitT++
			}
		}
		for _, r := range imgRank {
			if r < k {
				hitI++
			}
		}
		m[fmt.Sprintf("image_retrieval_recall@%d", k)] = ratio(hitI, len(imgRank))
		m[fmt.Sprintf("text_retrieval_recall@%d", k)] = ratio(hitT, nT)
	}
	return m, nil
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func dot32(a, b []float32) float32 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return float32(s)
}
