package wordpiece

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// hfTokenizerConfig is the part of a Hugging Face tokenizer_config.json
// for BertTokenizer that changes the output.
type hfTokenizerConfig struct {
	Class          string `json:"tokenizer_class"`
	DoLowerCase    *bool  `json:"do_lower_case"`
	DoBasic        *bool  `json:"do_basic_tokenize"`
	ChineseChars   *bool  `json:"tokenize_chinese_chars"`
	StripAccents   *bool  `json:"strip_accents"`
	ModelMaxLength *int64 `json:"model_max_length"`
}

// LoadHF reads a Hugging Face BertTokenizer from dir (vocab.txt and, if
// present, tokenizer_config.json) and returns it with the configured
// model_max_length (0 when absent or unbounded). It follows BertTokenizer's
// defaults: do_lower_case true, tokenize_chinese_chars true, strip_accents
// null (follow do_lower_case), 100-character words.
func LoadHF(dir string) (*Tokenizer, int, error) {
	v, err := LoadVocab(filepath.Join(dir, "vocab.txt"))
	if err != nil {
		return nil, 0, err
	}
	o := Options{Lowercase: true, ChineseChars: true, MaxInputCharsPerWord: 100, HF: true}
	maxLen := 0
	path := filepath.Join(dir, "tokenizer_config.json")
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, 0, fmt.Errorf("wordpiece: %w", err)
	default:
		var c hfTokenizerConfig
		if err := json.Unmarshal(b, &c); err != nil {
			return nil, 0, fmt.Errorf("wordpiece: %s: %v", path, err)
		}
		if c.Class != "" && c.Class != "BertTokenizer" && c.Class != "BertTokenizerFast" {
			return nil, 0, fmt.Errorf("wordpiece: %s: tokenizer_class %q is not a BERT tokenizer", path, c.Class)
		}
		if c.DoBasic != nil && !*c.DoBasic {
			return nil, 0, fmt.Errorf("wordpiece: %s: do_basic_tokenize false is not supported", path)
		}
		if c.DoLowerCase != nil {
			o.Lowercase = *c.DoLowerCase
		}
		if c.ChineseChars != nil {
			o.ChineseChars = *c.ChineseChars
		}
		if c.ModelMaxLength != nil && *c.ModelMaxLength > 0 && *c.ModelMaxLength < 1<<20 {
			maxLen = int(*c.ModelMaxLength)
		}
		if c.StripAccents != nil {
			o.StripAccents = *c.StripAccents
			return New(v, o), maxLen, nil
		}
	}
	o.StripAccents = o.Lowercase
	return New(v, o), maxLen, nil
}
