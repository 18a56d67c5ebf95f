package imageproc

import (
	"encoding/json"
	"fmt"
	"os"
)

// hfConfig is the part of a Hugging Face preprocessor_config.json used here.
type hfConfig struct {
	Size           json.RawMessage `json:"size"`
	CropSize       json.RawMessage `json:"crop_size"`
	ImageMean      []float64       `json:"image_mean"`
	ImageStd       []float64       `json:"image_std"`
	Resample       *int            `json:"resample"`
	RescaleFactor  *float64        `json:"rescale_factor"`
	DoResize       *bool           `json:"do_resize"`
	DoCenterCrop   *bool           `json:"do_center_crop"`
	DoRescale      *bool           `json:"do_rescale"`
	DoNormalize    *bool           `json:"do_normalize"`
	DoConvertRGB   *bool           `json:"do_convert_rgb"`
	ProcessorClass string          `json:"image_processor_type"`
}

// hfSize is a size field: an int, {"shortest_edge": n} or
// {"height": h, "width": w}.
type hfSize struct {
	shortest, height, width int
}

func parseHFSize(raw json.RawMessage) (hfSize, bool, error) {
	var s hfSize
	if len(raw) == 0 || string(raw) == "null" {
		return s, false, nil
	}
	var n int
	if err := json.Unmarshal(raw, &n); err == nil {
		s.shortest, s.height, s.width = n, n, n
		return s, true, nil
	}
	var m struct {
		Shortest *int `json:"shortest_edge"`
		Height   *int `json:"height"`
		Width    *int `json:"width"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return s, false, err
	}
	if m.Shortest != nil {
		s.shortest = *m.Shortest
	}
	if m.Height != nil && m.Width != nil {
		s.height, s.width = *m.Height, *m.Width
	}
	if s.shortest <= 0 && (s.height <= 0 || s.width <= 0) {
		return s, false, fmt.Errorf("size %s has neither a positive shortest_edge nor height and width", raw)
	}
	return s, true, nil
}

// hfResample maps PIL resampling numbers to Options.Interpolation names.
var hfResample = map[int]string{0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}

// LoadHFConfig reads a Hugging Face preprocessor_config.json
// (CLIPImageProcessor) and returns the matching Options with HFOrder set.
// Only square crops are supported; do_center_crop false is accepted only when
// the resize already yields a fixed square size.
func LoadHFConfig(path string) (Options, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Options{}, fmt.Errorf("imageproc: %w", err)
	}
	o, err := ParseHFConfig(b)
	if err != nil {
		return Options{}, fmt.Errorf("imageproc: %s: %w", path, err)
	}
	return o, nil
}

// ParseHFConfig parses the contents of a preprocessor_config.json (see
// LoadHFConfig).
func ParseHFConfig(data []byte) (Options, error) {
	var c hfConfig
	if err := json.Unmarshal(data, &c); err != nil {
		return Options{}, fmt.Errorf("parsing preprocessor config: %w", err)
	}
	o := Options{HFOrder: true, Mean: OpenAIMean, Std: OpenAIStd, Interpolation: "bicubic"}
	on := func(p *bool) bool { return p == nil || *p }

	size, hasSize, err := parseHFSize(c.Size)
	if err != nil {
		return Options{}, fmt.Errorf("size: %w", err)
	}
	crop, hasCrop, err := parseHFSize(c.CropSize)
	if err != nil {
		return Options{}, fmt.Errorf("crop_size: %w", err)
	}
	if on(c.DoResize) {
		if !hasSize {
			return Options{}, fmt.Errorf("do_resize is set but size is missing")
		}
		if size.shortest > 0 {
			o.ResizeShortest = size.shortest
		} else {
			o.ResizeWidth, o.ResizeHeight = size.width, size.height
		}
	} else {
		o.NoResize = true
	}
	switch {
	case on(c.DoCenterCrop) && hasCrop:
		if crop.height != crop.width || crop.height <= 0 {
			return Options{}, fmt.Errorf("crop_size %dx%d is not a positive square", crop.width, crop.height)
		}
		o.Size = crop.height
	case !o.NoResize && o.ResizeWidth > 0 && o.ResizeWidth == o.ResizeHeight:
		o.Size = o.ResizeWidth
	default:
		return Options{}, fmt.Errorf("no center crop and no fixed square resize: the output size would depend on the image")
	}
	if o.ResizeShortest == 0 && o.ResizeWidth == 0 && !o.NoResize {
		o.ResizeShortest = o.Size
	}
	if c.Resample != nil {
		name, ok := hfResample[*c.Resample]
		if !ok {
			return Options{}, fmt.Errorf("unknown resample %d", *c.Resample)
		}
		o.Interpolation = name
	}
	o.RescaleFactor = 1.0 / 255
	if c.RescaleFactor != nil {
		o.RescaleFactor = *c.RescaleFactor
	}
	if !on(c.DoRescale) {
		o.RescaleFactor = 1
	}
	if on(c.DoNormalize) {
		if c.ImageMean != nil {
			if len(c.ImageMean) != 3 {
				return Options{}, fmt.Errorf("image_mean has %d values, want 3", len(c.ImageMean))
			}
			for i, v := range c.ImageMean {
				o.Mean[i] = float32(v)
			}
		}
		if c.ImageStd != nil {
			if len(c.ImageStd) != 3 {
				return Options{}, fmt.Errorf("image_std has %d values, want 3", len(c.ImageStd))
			}
			for i, v := range c.ImageStd {
				if v == 0 {
					return Options{}, fmt.Errorf("image_std[%d] is zero", i)
				}
				o.Std[i] = float32(v)
			}
		}
	} else {
		o.Mean, o.Std = [3]float32{}, [3]float32{1, 1, 1}
	}
	return o, nil
}
