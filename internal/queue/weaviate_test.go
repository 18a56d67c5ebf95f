//go:build !386 && !arm && !mips && !mipsle

package queue

// The weaviate:// scheme, for TestStoreUnreachable (its client library does
// not build for 32-bit platforms).
import _ "github.com/goclip/goclip/internal/weaviate"
