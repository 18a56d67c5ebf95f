//go:build !386 && !arm && !mips && !mipsle

package weaviate

import (
	"context"
	"encoding/base64"
	"fmt"
	"math"
	"net/http/httptest"
	"os"
	"sort"
	"testing"
	"time"

	wv "github.com/weaviate/weaviate-go-client/v5/weaviate"
	"github.com/weaviate/weaviate-go-client/v5/weaviate/graphql"
	"github.com/weaviate/weaviate/entities/models"

	"github.com/goclip/goclip/internal/fixtures"
	"github.com/goclip/goclip/internal/kernels"
	"github.com/goclip/goclip/internal/server"
)

// TestMulti2vecClip starts one Weaviate node with the multi2vec-clip
// module pointed at an in-process goclip server (the fixture model) and
// checks that objects imported with text and image fields get the
// vectors goclip computes directly, and that nearText and nearImage rank
// the objects as exact search with those vectors does.
func TestMulti2vecClip(t *testing.T) {
	weaviateBin(t)
	model, dir := testModel(t)
	srv, err := server.New(server.Config{Model: model})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ts := httptest.NewServer(srv)
	defer ts.Close()
	nodes := startCluster(t, 1, "ENABLE_MODULES=multi2vec-clip", "CLIP_INFERENCE_API="+ts.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, err := wv.NewClient(wv.Config{Host: fmt.Sprintf("127.0.0.1:%d", nodes[0].http), Scheme: "http", Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	const class = "ClipDocs"
	err = cl.Schema().ClassCreator().WithClass(&models.Class{
		Class:             class,
		Vectorizer:        "multi2vec-clip",
		VectorIndexConfig: map[string]any{"distance": "cosine"},
		ModuleConfig: map[string]any{"multi2vec-clip": map[string]any{
			"textFields": []string{"caption"}, "imageFields": []string{"image"},
		}},
		Properties: []*models.Property{
			{Name: "name", DataType: []string{"text"}, Tokenization: models.PropertyTokenizationField},
			{Name: "caption", DataType: []string{"text"}},
			{Name: "image", DataType: []string{"blob"}},
		},
	}).Do(ctx)
	if err != nil {
		t.Fatalf("creating a multi2vec-clip class: %v", err)
	}

	// Objects: images alone, captions alone, and image+caption pairs.
	texts := fixtures.Texts(t, dir)
	nImg := min(6, len(fixtures.ReadManifest(t, dir).Images))
	nTxt := min(6, len(texts))
	type obj struct {
		name, caption, image string // image: file path
		want                 []float32
	}
	var objs []*obj
	for i := range nImg {
		objs = append(objs, &obj{name: fmt.Sprintf("img%d", i), image: fixtures.ImageFile(t, dir, i)})
	}
	for i := range nTxt {
		objs = append(objs, &obj{name: fmt.Sprintf("txt%d", i), caption: texts[i]})
	}
	for i := range min(nImg, nTxt) {
		objs = append(objs, &obj{name: fmt.Sprintf("both%d", i), caption: texts[(i+1)%len(texts)], image: fixtures.ImageFile(t, dir, i)})
	}
	// Expected vectors, straight from the model.
	for _, o := range objs {
		var v []float32
		if o.image != "" {
			e, err := model.EncodeImageFiles(ctx, []string{o.image})
			if err != nil {
				t.Fatal(err)
			}
			v = kernels.Normalized(e[0])
		}
		if o.caption != "" {
			e, err := model.EncodeTexts(ctx, []string{o.caption})
			if err != nil {
				t.Fatal(err)
			}
			tv := kernels.Normalized(e[0])
			if v == nil {
				v = tv
			} else { // the module averages text and image vectors
				for j := range v {
					v[j] += tv[j]
				}
			}
		}
		o.want = kernels.Normalized(v)
	}
	var batch []*models.Object
	for _, o := range objs {
		props := map[string]any{"name": o.name}
		if o.caption != "" {
			props["caption"] = o.caption
		}
		if o.image != "" {
			props["image"] = b64File(t, o.image)
		}
		batch = append(batch, &models.Object{Class: class, ID: strfmtUUID(ObjectID("multi2vec", o.name)), Properties: props})
	}
	resp, err := cl.Batch().ObjectsBatcher().WithObjects(batch...).Do(ctx)
	if err != nil {
		t.Fatalf("batch import: %v", err)
	}
	for _, r := range resp {
		if r.Result != nil && r.Result.Errors != nil {
			for _, e := range r.Result.Errors.Error {
				t.Errorf("import of %v: %s", r.Properties, e.Message)
			}
		}
	}
	// Each object holds goclip's vector.
	for _, o := range objs {
		got, err := cl.Data().ObjectsGetter().WithClassName(class).WithID(ObjectID("multi2vec", o.name)).WithVector().Do(ctx)
		if err != nil || len(got) != 1 {
			t.Fatalf("get %s: %v", o.name, err)
		}
		v := []float32(got[0].Vector)
		if len(v) != len(o.want) {
			t.Fatalf("%s: Weaviate vector of %d dimensions, model gives %d", o.name, len(v), len(o.want))
		}
		if c := dot(kernels.Normalized(v), o.want); c < 0.9999 {
			t.Errorf("%s: cosine(Weaviate vector, goclip vector) = %.6f", o.name, c)
		}
	}

	// nearText and nearImage rank every object as exact search does.
	check := func(what string, q []float32, arg func(*graphql.GetBuilder) *graphql.GetBuilder) {
		t.Helper()
		res, err := arg(cl.GraphQL().Get().WithClassName(class).WithLimit(len(objs)).
			WithFields(graphql.Field{Name: "name"}, graphql.Field{Name: "_additional", Fields: []graphql.Field{{Name: "distance"}}})).Do(ctx)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if len(res.Errors) > 0 {
			t.Fatalf("%s: %s", what, res.Errors[0].Message)
		}
		rows, _ := res.Data["Get"].(map[string]any)[class].([]any)
		if len(rows) != len(objs) {
			t.Fatalf("%s: %d results, want %d", what, len(rows), len(objs))
		}
		want := map[string]float64{}
		var order []string
		for _, o := range objs {
			want[o.name] = 1 - float64(dot(q, o.want))
			order = append(order, o.name)
		}
		sort.SliceStable(order, func(a, b int) bool { return want[order[a]] < want[order[b]] })
		for i, r := range rows {
			m := r.(map[string]any)
			name, _ := m["name"].(string)
			d, _ := m["_additional"].(map[string]any)["distance"].(float64)
			if math.Abs(d-want[name]) > 1e-4 {
				t.Errorf("%s: %s at distance %.6f, exact %.6f", what, name, d, want[name])
			}
			// Rank i must hold an object at the exact i-th distance (ties
			// between identical inputs may swap).
			if math.Abs(want[name]-want[order[i]]) > 1e-4 {
				t.Errorf("%s: rank %d is %s (%.6f), exact search has %s (%.6f)", what, i, name, want[name], order[i], want[order[i]])
			}
		}
		t.Logf("%s: %d objects ranked as exact search (top %v)", what, len(rows), order[:min(3, len(order))])
	}
	for i := range min(3, len(texts)) {
		e, err := model.EncodeTexts(ctx, []string{texts[i]})
		if err != nil {
			t.Fatal(err)
		}
		check(fmt.Sprintf("nearText %q", texts[i]), kernels.Normalized(e[0]), func(g *graphql.GetBuilder) *graphql.GetBuilder {
			return g.WithNearText(cl.GraphQL().NearTextArgBuilder().WithConcepts([]string{texts[i]}))
		})
	}
	for i := range min(3, nImg) {
		p := fixtures.ImageFile(t, dir, i+1)
		e, err := model.EncodeImageFiles(ctx, []string{p})
		if err != nil {
			t.Fatal(err)
		}
		check("nearImage "+p, kernels.Normalized(e[0]), func(g *graphql.GetBuilder) *graphql.GetBuilder {
			return g.WithNearImage(cl.GraphQL().NearImageArgBuilder().WithImage(b64File(t, p)))
		})
	}
}

func b64File(tb testing.TB, p string) string {
	tb.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		tb.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(data)
}
