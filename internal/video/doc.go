// Package video extends CLIP from images to video by sampling frames.
//
// Frames are decoded by ffmpeg (the Debian package "ffmpeg"; Extract)
// at a fixed rate or as N uniform frames, streamed as raw RGB through a
// pipe with no temporary files, each stamped with its exact timestamp
// (pts × time base, read from ffmpeg's showinfo filter). Embed
// preprocesses and embeds them with a CLIP model while ffmpeg keeps
// decoding.
//
// On top of the frame embeddings:
//   - Classify: zero-shot labels per clip from the mean of the
//     L2-normalised frame embeddings (CLIP4Clip's mean pooling), and per
//     sliding window;
//   - ShotStarts: shot boundaries where consecutive frames' cosine
//     similarity drops below a threshold;
//   - Index and Library: frame embeddings stored per video in the goclip
//     index database (store.PutVideos) and searched for moments — runs of
//     adjacent, similarly scoring frames of one shot — by text or image
//     (Library.Query, Library.Search), with thumbnails of any frame
//     (Library.Thumbnail, FrameAt).
package video
