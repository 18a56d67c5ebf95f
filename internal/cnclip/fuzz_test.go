package cnclip

import (
	"encoding/json"
	"testing"
)

func FuzzParseConfigs(f *testing.F) {
	f.Add([]byte(`{"embed_dim":64,"image_resolution":224,"vision_layers":2,"vision_width":128,"vision_patch_size":32}`),
		[]byte(`{"vocab_size":100,"text_hidden_size":128,"text_intermediate_size":512,"text_max_position_embeddings":512,"text_num_attention_heads":2,"text_num_hidden_layers":2,"text_type_vocab_size":2,"text_hidden_act":"gelu"}`))
	f.Add([]byte(`{"model_type":"chinese_clip","projection_dim":8,"text_config":{"hidden_size":16,"num_attention_heads":3},"vision_config_dict":{"hidden_size":0}}`), []byte(`{}`))
	f.Add([]byte(`{"vision_layers":[3,4,6,3]}`), []byte(`null`))
	f.Add([]byte(`{"text_config":{"max_position_embeddings":1},"vision_config":{"patch_size":0}}`), []byte(`[`))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		for _, cfg := range []func() (Config, error){
			func() (Config, error) { return ParseCNConfigs([]string{"a.json", "b.json"}, [][]byte{a, b}) },
			func() (Config, error) { return ParseHFConfig("config.json", a) },
		} {
			c, err := cfg()
			if err == nil {
				if verr := c.Validate(); verr != nil {
					t.Fatalf("accepted an invalid configuration: %v", verr)
				}
				_ = c.Shapes()
				// The config.json WriteHF writes reads back as c.
				b, err := json.Marshal(c.HFConfig())
				if err != nil {
					t.Fatal(err)
				}
				back, err := ParseHFConfig("written config.json", b)
				if err != nil {
					t.Fatalf("config.json written for %+v does not read back: %v", c, err)
				}
				if back != c {
					t.Fatalf("config.json round trip: %+v, want %+v", back, c)
				}
			}
		}
	})
}
