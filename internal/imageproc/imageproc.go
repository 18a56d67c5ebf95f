// Package imageproc loads images and turns them into CLIP model inputs
// exactly like the reference Python pipeline: openai/CLIP's _transform(n_px)
// (torchvision 0.14 Resize, CenterCrop, convert('RGB'), ToTensor, Normalize)
// running on Pillow 9.4, or optionally the Hugging Face CLIPImageProcessor
// order.
//
// Images keep Pillow's notion of a mode (RGB, RGBA, L, LA, P, 1, I, CMYK)
// because the mode decides how Pillow resamples: RGBA and LA are resized
// premultiplied, P and 1 with nearest neighbour, I in 32-bit arithmetic, the
// rest with 8-bit fixed-point weights. Resampling reproduces Pillow's
// libImaging/Resample.c arithmetic bit for bit.
package imageproc

import (
	"errors"
	"fmt"
)

// Mode is a Pillow image mode.
type Mode string

// The modes an Image can have.
const (
	ModeRGB  Mode = "RGB"  // 3×8-bit
	ModeRGBA Mode = "RGBA" // 4×8-bit, non-premultiplied alpha
	ModeL    Mode = "L"    // 8-bit grey
	ModeLA   Mode = "LA"   // 8-bit grey + 8-bit alpha
	ModeP    Mode = "P"    // 8-bit palette index
	Mode1    Mode = "1"    // bilevel, stored as one byte 0 or 255 per pixel
	ModeI    Mode = "I"    // 32-bit signed integer grey (16-bit grey PNGs)
	ModeCMYK Mode = "CMYK" // 4×8-bit CMYK
)

// Channels returns the number of bytes per pixel in Image.Pix for the mode,
// or 0 for ModeI (which uses Image.Pix32) and unknown modes.
func (m Mode) Channels() int {
	switch m {
	case ModeRGB:
		return 3
	case ModeRGBA, ModeCMYK:
		return 4
	case ModeLA:
		return 2
	case ModeL, ModeP, Mode1:
		return 1
	}
	return 0
}

// Image is a decoded image in a Pillow mode. Pixels are row-major with no
// padding between rows.
type Image struct {
	Mode          Mode
	Width, Height int
	// Pix holds Width*Height*Mode.Channels() bytes for every mode but I.
	Pix []uint8
	// Pix32 holds Width*Height values for mode I.
	Pix32 []int32
	// Palette holds the RGB palette of a mode P image (at most 256 entries;
	// indices beyond it read as black). Palette transparency is not kept:
	// the reference ignores it.
	Palette [][3]uint8
	// Orientation is the EXIF orientation tag (1..8) found in the file, or 0.
	Orientation int
}

// Errors returned (wrapped, with the file name) by the decoding functions.
var (
	ErrTooLarge      = errors.New("image exceeds the pixel limit (possible decompression bomb)")
	ErrEmpty         = errors.New("image has zero width or height")
	ErrUnknownFormat = errors.New("unknown or unsupported image format")
)

// DefaultMaxPixels is the pixel limit used when Options.MaxPixels is 0. It is
// Pillow's DecompressionBombError threshold (2 × Image.MAX_IMAGE_PIXELS).
const DefaultMaxPixels = 2 * 89478485

// OpenAI CLIP normalisation constants.
var (
	OpenAIMean = [3]float32{0.48145466, 0.4578275, 0.40821073}
	OpenAIStd  = [3]float32{0.26862954, 0.26130258, 0.27577711}
)

// Options controls decoding and preprocessing.
type Options struct {
	// Size is the side of the square output (n_px). It is also the target
	// of the shortest-edge resize unless ResizeShortest or
	// ResizeWidth/ResizeHeight say otherwise.
	Size int
	// Mean and Std normalise each channel: (x - Mean) / Std.
	Mean, Std [3]float32
	// Interpolation is the resampling filter: "bicubic" (default when
	// empty), "bilinear", "nearest", "lanczos", "box" or "hamming". Like
	// Pillow, P and 1 images are always resized with nearest neighbour.
	Interpolation string
	// HFOrder selects the Hugging Face CLIPImageProcessor order: convert to
	// RGB first, resize, crop with floor-division offsets, multiply by
	// RescaleFactor (in float64), normalise.
	HFOrder bool
	// ResizeShortest, when > 0, is the shortest-edge resize target
	// (default Size).
	ResizeShortest int
	// ResizeWidth and ResizeHeight, when both > 0, resize to exactly this
	// size instead of a shortest-edge resize (HF size.height/width).
	ResizeWidth, ResizeHeight int
	// NoResize skips the resize step (HF do_resize false).
	NoResize bool
	// RescaleFactor is the HF rescale factor (used only with HFOrder;
	// 0 means 1/255). The reference order always divides by 255.
	RescaleFactor float64
	// ApplyEXIF rotates/flips the image by its EXIF orientation before
	// preprocessing. The reference does not, so it is off by default.
	ApplyEXIF bool
	// GoJPEG decodes JPEG files with Go's image/jpeg instead of goclip's
	// libjpeg-turbo-exact decoder (faster on some inputs, not the
	// reference pixels).
	GoJPEG bool
	// MaxPixels is the largest width*height accepted when decoding:
	// 0 means DefaultMaxPixels, negative means no limit.
	MaxPixels int64
}

// DefaultOptions returns the reference openai/CLIP preprocessing for n_px =
// size: OpenAI mean/std, bicubic, torchvision order.
func DefaultOptions(size int) Options {
	return Options{Size: size, Mean: OpenAIMean, Std: OpenAIStd, Interpolation: "bicubic"}
}

func (o *Options) maxPixels() int64 {
	if o.MaxPixels == 0 {
		return DefaultMaxPixels
	}
	return o.MaxPixels
}

func (o *Options) validate() error {
	if o.Size <= 0 {
		return fmt.Errorf("imageproc: output size %d must be positive", o.Size)
	}
	if _, err := parseFilter(o.Interpolation); err != nil {
		return err
	}
	for c := 0; c < 3; c++ {
		if o.Std[c] == 0 {
			return fmt.Errorf("imageproc: std[%d] is zero", c)
		}
	}
	return nil
}
