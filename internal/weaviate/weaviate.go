//go:build !386 && !arm && !mips && !mipsle

// Package weaviate is goclip's distributed store backend: a Weaviate
// class (vectorizer none, cosine HNSW index) holding one object per file,
// written by gRPC batch import and searched by gRPC nearVector, with the
// vectors computed by goclip. Opening it registers the "weaviate" scheme
// with package backend:
//
//	goclip index --store 'weaviate://127.0.0.1:8080/GoclipImages?grpc=50051' photos/
//
// One class holds one model's embeddings: its description records the
// model id and dimension, and a class of another dimension is refused
// with both dimensions named. Object ids are derived from the model id
// and the file path, so an upsert of the same file replaces its object
// (a redelivered queue job never stores a file twice); the content hash
// is kept so unchanged files are not re-embedded.
package weaviate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	wv "github.com/weaviate/weaviate-go-client/v5/weaviate"
	"github.com/weaviate/weaviate-go-client/v5/weaviate/fault"
	"github.com/weaviate/weaviate-go-client/v5/weaviate/filters"
	"github.com/weaviate/weaviate-go-client/v5/weaviate/graphql"
	wgrpc "github.com/weaviate/weaviate-go-client/v5/weaviate/grpc"
	"github.com/weaviate/weaviate/entities/models"

	"github.com/goclip/goclip/internal/backend"
	"github.com/goclip/goclip/internal/kernels"
)

func init() {
	backend.Register("weaviate", func(ctx context.Context, u *url.URL) (backend.Backend, error) {
		c, err := FromURL(u)
		if err != nil {
			return nil, err
		}
		return Open(ctx, c)
	})
}

// Store is a backend.Backend on one Weaviate class.
type Store struct {
	cfg    Config
	client *wv.Client
}

// Open connects to the Weaviate of c, waiting for it to be ready with
// c.Retries retries (exponential backoff): an unreachable Weaviate is an
// error naming the address after the last retry.
func Open(ctx context.Context, c *Config) (*Store, error) {
	cl, err := wv.NewClient(wv.Config{
		Host: c.Host, Scheme: "http",
		GrpcConfig: &wgrpc.Config{Host: c.GRPCHost},
		Timeout:    c.Timeout,
	})
	if err != nil {
		return nil, fmt.Errorf("weaviate: %s: %w", c.Host, err)
	}
	s := &Store{cfg: *c, client: cl}
	err = s.retry(ctx, "readiness check", func(ctx context.Context) error {
		ok, err := cl.Misc().ReadyChecker().Do(ctx)
		if err != nil {
			return err
		}
		if !ok {
			return errRetry("not ready")
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

type errRetry string

func (e errRetry) Error() string { return string(e) }

// retryable reports whether err is worth retrying: transport errors,
// 5xx, 429 and gRPC unavailability, not 4xx answers.
func retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var fe *fault.WeaviateClientError
	if errors.As(err, &fe) && fe.IsUnexpectedStatusCode {
		return fe.StatusCode >= 500 || fe.StatusCode == 429
	}
	return true
}

// retry runs op up to 1+Retries times with exponential backoff while its
// error is retryable.
func (s *Store) retry(ctx context.Context, what string, op func(context.Context) error) error {
	wait := s.cfg.Backoff
	var err error
	for attempt := 0; ; attempt++ {
		err = op(ctx)
		if err == nil || !retryable(err) || attempt >= s.cfg.Retries {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("weaviate %s: %s: %w (last error: %v)", s.cfg.Host, what, ctx.Err(), err)
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
	if err != nil {
		return fmt.Errorf("weaviate %s (gRPC %s): %s failed after %d retries: %w", s.cfg.Host, s.cfg.GRPCHost, what, s.cfg.Retries, err)
	}
	return nil
}

// Config returns the store's configuration.
func (s *Store) Config() Config { return s.cfg }

// classInfo is the JSON kept in the class description.
type classInfo struct {
	Model  string `json:"model"`
	Dim    int    `json:"dim"`
	Source string `json:"source,omitempty"`
}

const descPrefix = "goclip "

// readClass reads the store's class (with retries); nil when it does not
// exist.
func (s *Store) readClass(ctx context.Context) (*models.Class, error) {
	var cls *models.Class
	err := s.retry(ctx, "schema read", func(ctx context.Context) error {
		var err error
		cls, err = s.client.Schema().ClassGetter().WithClassName(s.cfg.Class).Do(ctx)
		var fe *fault.WeaviateClientError
		if errors.As(err, &fe) && fe.StatusCode == 404 {
			cls, err = nil, nil
		}
		return err
	})
	return cls, err
}

// EnsureModel implements backend.Backend: it creates the class (vectorizer
// none, cosine distance) or checks that the existing one holds modelID's
// dim-dimensional vectors.
func (s *Store) EnsureModel(ctx context.Context, modelID string, dim int, source string) error {
	if modelID == "" || dim <= 0 {
		return fmt.Errorf("weaviate: bad model id %q or dimension %d", modelID, dim)
	}
	cls, err := s.readClass(ctx)
	if err != nil {
		return err
	}
	if cls != nil {
		return s.checkClass(ctx, cls, modelID, dim)
	}
	info, _ := json.Marshal(classInfo{modelID, dim, source})
	hnsw := map[string]any{"distance": "cosine"}
	if s.cfg.Ef > 0 {
		hnsw["ef"] = s.cfg.Ef
	}
	if s.cfg.EfConstruction > 0 {
		hnsw["efConstruction"] = s.cfg.EfConstruction
	}
	if s.cfg.MaxConnections > 0 {
		hnsw["maxConnections"] = s.cfg.MaxConnections
	}
	f := false
	cls = &models.Class{
		Class:             s.cfg.Class,
		Description:       descPrefix + string(info),
		Vectorizer:        "none",
		VectorIndexType:   "hnsw",
		VectorIndexConfig: hnsw,
		ReplicationConfig: &models.ReplicationConfig{Factor: int64(s.cfg.Replication)},
		Properties: []*models.Property{
			{Name: "path", DataType: []string{"text"}, Tokenization: models.PropertyTokenizationField},
			{Name: "hash", DataType: []string{"text"}, Tokenization: models.PropertyTokenizationField},
			{Name: "size", DataType: []string{"int"}, IndexFilterable: &f},
			{Name: "mtime", DataType: []string{"int"}, IndexFilterable: &f},
			{Name: "failed", DataType: []string{"boolean"}},
			{Name: "err", DataType: []string{"text"}, IndexFilterable: &f, IndexSearchable: &f},
		},
	}
	err = s.retry(ctx, "class creation", func(ctx context.Context) error {
		err := s.client.Schema().ClassCreator().WithClass(cls).Do(ctx)
		if err != nil && strings.Contains(strings.ToLower(err.Error()), "already exists") {
			return nil // another worker won the race; checked below
		}
		return err
	})
	if err != nil {
		return err
	}
	got, err := s.client.Schema().ClassGetter().WithClassName(s.cfg.Class).Do(ctx)
	if err != nil {
		return fmt.Errorf("weaviate %s: class %s: %w", s.cfg.Host, s.cfg.Class, err)
	}
	return s.checkClass(ctx, got, modelID, dim)
}

// checkClass refuses a class that holds another model or dimension.
func (s *Store) checkClass(ctx context.Context, cls *models.Class, modelID string, dim int) error {
	if d, ok := strings.CutPrefix(cls.Description, descPrefix); ok {
		var ci classInfo
		if err := json.Unmarshal([]byte(d), &ci); err == nil {
			if ci.Dim != dim {
				return fmt.Errorf("weaviate: class %s holds %d-d vectors, the model gives %d-d: %w (use another class name)", s.cfg.Class, ci.Dim, dim, backend.ErrDimension)
			}
			if ci.Model != modelID {
				return fmt.Errorf("weaviate: class %s holds embeddings of model %s, not %s (use another class name)", s.cfg.Class, ci.Model, modelID)
			}
			return nil
		}
	}
	// A class goclip did not create: compare with a stored vector.
	objs, err := s.client.Data().ObjectsGetter().WithClassName(s.cfg.Class).WithVector().WithLimit(1).Do(ctx)
	if err != nil {
		return fmt.Errorf("weaviate %s: class %s: %w", s.cfg.Host, s.cfg.Class, err)
	}
	if len(objs) > 0 && len(objs[0].Vector) > 0 && len(objs[0].Vector) != dim {
		return fmt.Errorf("weaviate: class %s holds %d-d vectors, the model gives %d-d: %w (use another class name)", s.cfg.Class, len(objs[0].Vector), dim, backend.ErrDimension)
	}
	return nil
}

// ObjectID is the Weaviate object id of path under modelID: a UUID
// (version 5 layout) from the SHA-256 of both.
func ObjectID(modelID, path string) string {
	h := sha256.Sum256([]byte(modelID + "\x00" + path))
	h[6] = h[6]&0x0f | 0x50
	h[8] = h[8]&0x3f | 0x80
	x := hex.EncodeToString(h[:16])
	return x[:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}

// Upsert implements backend.Backend by gRPC batch import; objects of
// the same path replace each other.
func (s *Store) Upsert(ctx context.Context, modelID string, recs []backend.Record) error {
	if len(recs) == 0 {
		return nil
	}
	objs := make([]*models.Object, len(recs))
	for i, r := range recs {
		if r.Path == "" {
			return errors.New("weaviate: empty path")
		}
		o := &models.Object{
			Class: s.cfg.Class,
			ID:    strfmtUUID(ObjectID(modelID, r.Path)),
			Properties: map[string]any{
				"path": r.Path, "hash": hex.EncodeToString(r.Hash[:]),
				"size": r.Size, "mtime": r.ModTime,
				"failed": r.Embedding == nil, "err": r.Err,
			},
		}
		if r.Embedding != nil {
			o.Vector = kernels.Normalized(r.Embedding)
		}
		objs[i] = o
	}
	return s.retry(ctx, fmt.Sprintf("batch import of %d objects", len(objs)), func(ctx context.Context) error {
		resp, err := s.client.Batch().ObjectsBatcher().WithObjects(objs...).WithConsistencyLevel(s.cfg.Consistency).Do(ctx)
		if err != nil {
			return err
		}
		var msgs []string
		for _, r := range resp {
			if r.Result != nil && r.Result.Errors != nil {
				for _, e := range r.Result.Errors.Error {
					path, _ := r.Properties.(map[string]any)["path"].(string)
					msgs = append(msgs, fmt.Sprintf("%s: %s", path, e.Message))
				}
			}
		}
		if len(msgs) > 0 {
			return errRetry("object errors: " + strings.Join(msgs, "; "))
		}
		return nil
	})
}

// Delete implements backend.Backend.
func (s *Store) Delete(ctx context.Context, modelID string, paths []string) error {
	for _, p := range paths {
		err := s.retry(ctx, "delete of "+p, func(ctx context.Context) error {
			err := s.client.Data().Deleter().WithClassName(s.cfg.Class).WithID(ObjectID(modelID, p)).WithConsistencyLevel(s.cfg.Consistency).Do(ctx)
			var fe *fault.WeaviateClientError
			if errors.As(err, &fe) && fe.StatusCode == 404 {
				return nil
			}
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Lookup implements backend.Backend with one gRPC filtered query per call.
func (s *Store) Lookup(ctx context.Context, modelID string, paths []string) (map[string]backend.Record, error) {
	out := map[string]backend.Record{}
	for start := 0; start < len(paths); start += 100 {
		chunk := paths[start:min(start+100, len(paths))]
		var res []graphql.SearchResult
		err := s.retry(ctx, "lookup", func(ctx context.Context) error {
			var err error
			res, err = s.client.Experimental().Search().WithCollection(s.cfg.Class).
				WithWhere(filters.Where().WithPath([]string{"path"}).WithOperator(filters.ContainsAny).WithValueText(chunk...)).
				WithProperties("path", "hash", "size", "mtime", "failed", "err").
				WithLimit(len(chunk) + 1).WithConsistencyLevel(s.cfg.Consistency).Do(ctx)
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, r := range res {
			rec := recordFrom(r.Properties)
			if rec.Path != "" {
				out[rec.Path] = rec
			}
		}
	}
	return out, nil
}

func recordFrom(p map[string]any) backend.Record {
	var r backend.Record
	r.Path, _ = p["path"].(string)
	if h, ok := p["hash"].(string); ok {
		b, err := hex.DecodeString(h)
		if err == nil && len(b) == 32 {
			copy(r.Hash[:], b)
		}
	}
	r.Size = toInt(p["size"])
	r.ModTime = toInt(p["mtime"])
	r.Err, _ = p["err"].(string)
	if f, _ := p["failed"].(bool); f && r.Err == "" {
		r.Err = "failed"
	}
	return r
}

func toInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case float64:
		return int64(x)
	case int:
		return int64(x)
	case float32:
		return int64(x)
	}
	return 0
}

// Search implements backend.Backend by gRPC nearVector; the score is the
// cosine similarity (1 − Weaviate's cosine distance).
func (s *Store) Search(ctx context.Context, modelID string, query []float32, k int) ([]backend.Result, error) {
	if k <= 0 {
		return nil, nil
	}
	q := kernels.Normalized(query)
	var res []graphql.SearchResult
	err := s.retry(ctx, "nearVector search", func(ctx context.Context) error {
		var err error
		res, err = s.client.Experimental().Search().WithCollection(s.cfg.Class).
			WithNearVector((&graphql.NearVectorArgumentBuilder{}).WithVector(q)).
			WithProperties("path").WithMetadata(&graphql.Metadata{Distance: true}).
			WithLimit(k).WithConsistencyLevel(s.cfg.Consistency).Do(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]backend.Result, 0, len(res))
	for _, r := range res {
		p, _ := r.Properties["path"].(string)
		out = append(out, backend.Result{Path: p, Score: 1 - r.Metadata.Distance})
	}
	return out, nil
}

// Count implements backend.Backend: the objects with a vector. It asks
// Weaviate's Aggregate; while a replica is down, Weaviate 1.35 refuses
// an Aggregate over replicated shards ("inconsistent consistency
// levels"), and the objects are counted by listing them instead.
func (s *Store) Count(ctx context.Context, modelID string) (int, error) {
	var n int
	degraded := false
	err := s.retry(ctx, "count", func(ctx context.Context) error {
		resp, err := s.client.GraphQL().Aggregate().WithClassName(s.cfg.Class).
			WithWhere(filters.Where().WithPath([]string{"failed"}).WithOperator(filters.Equal).WithValueBoolean(false)).
			WithFields(graphql.Field{Name: "meta", Fields: []graphql.Field{{Name: "count"}}}).Do(ctx)
		if err != nil {
			return err
		}
		if len(resp.Errors) > 0 {
			if strings.Contains(resp.Errors[0].Message, "consistency level") {
				degraded = true
				return nil
			}
			return fmt.Errorf("aggregate: %s", resp.Errors[0].Message)
		}
		n, err = aggregateCount(resp.Data, s.cfg.Class)
		return err
	})
	if err != nil || !degraded {
		return n, err
	}
	n = 0
	err = s.list(ctx, func(o *models.Object) {
		if f, _ := o.Properties.(map[string]any)["failed"].(bool); !f {
			n++
		}
	})
	return n, err
}

func aggregateCount(data map[string]models.JSONObject, class string) (int, error) {
	agg, _ := data["Aggregate"].(map[string]any)
	rows, _ := agg[class].([]any)
	if len(rows) == 0 {
		return 0, nil
	}
	row, _ := rows[0].(map[string]any)
	meta, _ := row["meta"].(map[string]any)
	c, ok := meta["count"].(float64)
	if !ok {
		return 0, fmt.Errorf("weaviate: aggregate answer without meta.count: %v", data)
	}
	return int(c), nil
}

// Close implements backend.Backend.
func (s *Store) Close() error { return nil }

// Paths lists the path of every object in the class (failures
// included), in object-id order. A path would appear twice only if the
// class held a duplicate object.
func (s *Store) Paths(ctx context.Context) ([]string, error) {
	var out []string
	err := s.list(ctx, func(o *models.Object) {
		p, _ := o.Properties.(map[string]any)["path"].(string)
		out = append(out, p)
	})
	return out, err
}

// list calls fn for every object of the class (without its vector), by
// cursor over the REST objects list.
func (s *Store) list(ctx context.Context, fn func(*models.Object)) error {
	after := ""
	for {
		var objs []*models.Object
		err := s.retry(ctx, "object listing", func(ctx context.Context) error {
			g := s.client.Data().ObjectsGetter().WithClassName(s.cfg.Class).WithLimit(1000)
			if after != "" {
				g = g.WithAfter(after)
			}
			var err error
			objs, err = g.Do(ctx)
			return err
		})
		if err != nil {
			return err
		}
		if len(objs) == 0 {
			return nil
		}
		for _, o := range objs {
			fn(o)
		}
		after = string(objs[len(objs)-1].ID)
	}
}
