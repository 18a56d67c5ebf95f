// Command prepare builds the emoji image–text dataset for goclip's built-in
// model from the npm packages emoji-datasource-google,
// emoji-datasource-twitter and emojibase-data (unpacked by fetch.sh; none
// of their files is committed):
//
//   - train.csv: google-style images (base emoji and skin-tone variants) of
//     90% of the emoji concepts, several English and Chinese captions each;
//   - test.csv: twitter-style images of the other 10% of concepts (held out
//     entirely), with their English and Chinese names;
//   - names.csv: every concept with its names and split;
//   - vocab.json + merges.txt: the CLIP BPE restricted to the merges the
//     training captions use (see -bpe), so the model's token table is small.
//
// Usage: go run ./scripts/emoji/prepare -src DIR -out DIR -bpe bpe_simple_vocab_16e6.txt.gz
package main

import (
	"bufio"
	"compress/gzip"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"hash/fnv"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/goclip/goclip/internal/tokenizer"
)

type dsEmoji struct {
	Name          string `json:"name"`
	Unified       string `json:"unified"`
	Image         string `json:"image"`
	Category      string `json:"category"`
	HasGoogle     bool   `json:"has_img_google"`
	HasTwitter    bool   `json:"has_img_twitter"`
	SkinVariation map[string]struct {
		Unified   string `json:"unified"`
		Image     string `json:"image"`
		HasGoogle bool   `json:"has_img_google"`
	} `json:"skin_variations"`
}

type ebEmoji struct {
	Label   string   `json:"label"`
	Hexcode string   `json:"hexcode"`
	Tags    []string `json:"tags"`
	Skins   []struct {
		Label   string `json:"label"`
		Hexcode string `json:"hexcode"`
	} `json:"skins"`
}

type names struct {
	label string
	tags  []string
}

func key(hex string) string {
	var parts []string
	for _, p := range strings.Split(strings.ToUpper(hex), "-") {
		if p != "FE0F" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, "-")
}

func readJSON(path string, v any) {
	b, err := os.ReadFile(path)
	if err != nil {
		log.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		log.Fatalf("%s: %v", path, err)
	}
}

func emojibase(path string) map[string]names {
	var list []ebEmoji
	readJSON(path, &list)
	m := map[string]names{}
	for _, e := range list {
		m[key(e.Hexcode)] = names{e.Label, e.Tags}
		for _, s := range e.Skins {
			m[key(s.Hexcode)] = names{s.Label, e.Tags}
		}
	}
	return m
}

// heldOut puts 10% of the concepts in the test split, by a hash of the
// code point sequence (stable across package versions).
func heldOut(hex string) bool {
	h := fnv.New32a()
	h.Write([]byte(key(hex)))
	return h.Sum32()%10 == 3
}

func main() {
	src := flag.String("src", filepath.Join(os.Getenv("HOME"), ".cache/goclip/emoji"), "directory holding the unpacked npm packages")
	out := flag.String("out", "", "output directory (default: -src)")
	bpe := flag.String("bpe", "", "CLIP bpe_simple_vocab_16e6.txt.gz to derive the small vocabulary from (default $GOCLIP_TOKENIZER)")
	vocab := flag.Bool("vocab", true, "derive the small vocabulary too (needs -bpe); false writes only the CSVs")
	flag.Parse()
	if *out == "" {
		*out = *src
	}
	find := func(prefix string) string {
		m, _ := filepath.Glob(filepath.Join(*src, prefix+"-*", "package"))
		if len(m) == 0 {
			log.Fatalf("%s: no unpacked %s package (run scripts/emoji/fetch.sh)", *src, prefix)
		}
		sort.Strings(m)
		return m[len(m)-1]
	}
	google, twitter, eb := find("emoji-datasource-google"), find("emoji-datasource-twitter"), find("emojibase-data")
	var ds []dsEmoji
	readJSON(filepath.Join(google, "emoji.json"), &ds)
	en := emojibase(filepath.Join(eb, "en", "data.json"))
	zh := emojibase(filepath.Join(eb, "zh", "data.json"))

	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	create := func(name string, header ...string) (*csv.Writer, func()) {
		f, err := os.Create(filepath.Join(*out, name))
		if err != nil {
			log.Fatal(err)
		}
		w := csv.NewWriter(f)
		w.Write(header)
		return w, func() {
			w.Flush()
			if err := w.Error(); err != nil {
				log.Fatal(err)
			}
			f.Close()
		}
	}
	train, closeTrain := create("train.csv", "filepath", "caption")
	test, closeTest := create("test.csv", "filepath", "label_en", "label_zh", "hexcode")
	all, closeAll := create("names.csv", "hexcode", "label_en", "label_zh", "split")
	var captions []string
	nTrain, nTest, nImg, nRows := 0, 0, 0, 0
	sort.Slice(ds, func(i, j int) bool { return ds[i].Unified < ds[j].Unified })
	for _, e := range ds {
		k := key(e.Unified)
		ne, ok1 := en[k]
		nz, ok2 := zh[k]
		if !ok1 || !ok2 || ne.label == "" || nz.label == "" {
			continue
		}
		split := "train"
		if heldOut(e.Unified) {
			split = "test"
		}
		all.Write([]string{k, ne.label, nz.label, split})
		if split == "test" {
			if e.HasTwitter {
				test.Write([]string{filepath.Join(twitter, "img/twitter/64", e.Image), ne.label, nz.label, k})
				nTest++
			}
			continue
		}
		nTrain++
		type img struct{ file, key string }
		imgs := []img{{e.Image, k}}
		var skins []string
		for s := range e.SkinVariation {
			skins = append(skins, s)
		}
		sort.Strings(skins)
		for _, s := range skins {
			v := e.SkinVariation[s]
			if v.HasGoogle {
				imgs = append(imgs, img{v.Image, key(v.Unified)})
			}
		}
		for i, im := range imgs {
			le, lz := en[im.key].label, zh[im.key].label
			if le == "" || lz == "" {
				le, lz = ne.label, nz.label
			}
			path := filepath.Join(google, "img/google/64", im.file)
			if _, err := os.Stat(path); err != nil {
				continue
			}
			nImg++
			caps := []string{le, "a " + le + " emoji", lz, lz + "的表情符号"}
			if t := pick(ne.tags, i, 3); t != "" {
				caps = append(caps, "an emoji of "+t)
			}
			if t := pick(nz.tags, i, 3); t != "" {
				caps = append(caps, strings.ReplaceAll(t, ", ", "，"))
			}
			for _, c := range caps {
				train.Write([]string{path, c})
				captions = append(captions, c)
				nRows++
			}
		}
	}
	closeTrain()
	closeTest()
	closeAll()
	log.Printf("train: %d concepts, %d images, %d rows; test: %d held-out concepts (twitter style)", nTrain, nImg, nRows, nTest)
	if !*vocab {
		return
	}

	path := *bpe
	if path == "" {
		if p, err := tokenizer.Find(""); err == nil {
			path = p
		}
	}
	if path == "" {
		log.Fatal("no CLIP BPE vocabulary: pass -bpe or set $GOCLIP_TOKENIZER")
	}
	if err := deriveVocab(path, captions, *out); err != nil {
		log.Fatal(err)
	}
}

// pick returns up to n tags starting at a position that rotates with i.
func pick(tags []string, i, n int) string {
	if len(tags) == 0 {
		return ""
	}
	var out []string
	for j := range min(n, len(tags)) {
		out = append(out, tags[(i*n+j)%len(tags)])
	}
	return strings.Join(out, ", ")
}

// deriveVocab replays CLIP's BPE over the captions' pre-tokenized pieces,
// keeps only the merges it applies, and writes them (in their original
// order) with the 512 byte symbols and the two special tokens as a Hugging
// Face vocab.json + merges.txt. For every caption word the small tokenizer
// then gives exactly the original segmentation (a merge never applied to
// any word can never be the lowest-ranked applicable one); other words
// fall back to shorter pieces. The end-of-text token keeps the highest id.
func deriveVocab(bpePath string, captions []string, out string) error {
	f, err := os.Open(bpePath)
	if err != nil {
		return err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("%s: %w", bpePath, err)
	}
	sc := bufio.NewScanner(gz)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var merges [][2]string
	rank := map[[2]string]int{}
	sc.Scan() // header
	for sc.Scan() && len(merges) < 49152-256-2 {
		p := strings.Fields(sc.Text())
		if len(p) != 2 {
			continue
		}
		rank[[2]string{p[0], p[1]}] = len(merges)
		merges = append(merges, [2]string{p[0], p[1]})
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", bpePath, err)
	}
	table, order := tokenizer.BytesToUnicode()
	used := map[int]bool{}
	seen := map[string]bool{}
	for _, c := range captions {
		for _, piece := range tokenizer.Pieces(tokenizer.Clean(c)) {
			if seen[piece] {
				continue
			}
			seen[piece] = true
			var word []string
			for _, b := range []byte(piece) {
				word = append(word, string(table[b]))
			}
			word[len(word)-1] += "</w>"
			for len(word) > 1 {
				best := -1
				for i := 0; i+1 < len(word); i++ {
					if r, ok := rank[[2]string{word[i], word[i+1]}]; ok && (best < 0 || r < best) {
						best = r
					}
				}
				if best < 0 {
					break
				}
				used[best] = true
				a, b := merges[best][0], merges[best][1]
				var next []string
				for i := 0; i < len(word); i++ {
					if i+1 < len(word) && word[i] == a && word[i+1] == b {
						next = append(next, a+b)
						i++
					} else {
						next = append(next, word[i])
					}
				}
				word = next
			}
		}
	}
	vocab := map[string]int{}
	add := func(s string) {
		if _, ok := vocab[s]; !ok {
			vocab[s] = len(vocab)
		}
	}
	for _, b := range order {
		add(string(table[b]))
	}
	for _, b := range order {
		add(string(table[b]) + "</w>")
	}
	var ranks []int
	for r := range used {
		ranks = append(ranks, r)
	}
	sort.Ints(ranks)
	var mt strings.Builder
	mt.WriteString("#version: 0.2 (CLIP bpe_simple_vocab_16e6 merges used by the goclip emoji captions)\n")
	for _, r := range ranks {
		add(merges[r][0] + merges[r][1])
		mt.WriteString(merges[r][0] + " " + merges[r][1] + "\n")
	}
	add("<|startoftext|>")
	add("<|endoftext|>")
	vj, err := json.Marshal(vocab)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "vocab.json"), vj, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "merges.txt"), []byte(mt.String()), 0o644); err != nil {
		return err
	}
	// Check the claim above on every caption.
	full, err := tokenizer.Load(bpePath)
	if err != nil {
		return err
	}
	small, err := tokenizer.Load(filepath.Join(out, "vocab.json"))
	if err != nil {
		return err
	}
	for _, c := range captions {
		a, b := full.Encode(c), small.Encode(c)
		if len(a) != len(b) {
			return fmt.Errorf("derived vocabulary tokenizes %q differently", c)
		}
		for i := range a {
			if full.Token(a[i]) != small.Token(b[i]) {
				return fmt.Errorf("derived vocabulary tokenizes %q differently", c)
			}
		}
	}
	log.Printf("vocabulary: %d tokens (%d of %d merges) in %s", len(vocab), len(ranks), len(merges), out)
	return nil
}
