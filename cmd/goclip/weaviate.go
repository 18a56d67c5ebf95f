//go:build !386 && !arm && !mips && !mipsle

package main

// The Weaviate backend (weaviate:// stores) registers itself with
// internal/backend. Its client library does not build for 32-bit
// platforms; there --store names the schemes that remain.
import _ "github.com/goclip/goclip/internal/weaviate"
