package checkpoint

import (
	"reflect"
	"testing"
)

// TestFromFloat32NewFile checks that FromFloat32 round-trips through
// Float32 with its own shape, and that NewFile keeps the tensors' order.
func TestFromFloat32NewFile(t *testing.T) {
	shape := []int{2, 2}
	v := []float32{1, -2.5, 3e-8, 4}
	a := FromFloat32("a", shape, v)
	shape[0] = 9 // the tensor keeps its own copy
	got, err := a.Float32()
	if err != nil || !reflect.DeepEqual(got, v) || !reflect.DeepEqual(a.Shape, []int{2, 2}) {
		t.Fatalf("FromFloat32: %v %v %v", got, a.Shape, err)
	}
	f := NewFile("state", []*Tensor{FromFloat32("b", []int{1}, []float32{7}), a})
	if f.Path != "state" || !reflect.DeepEqual(f.Names, []string{"b", "a"}) || f.Tensor("a") != a {
		t.Fatalf("NewFile: %+v", f)
	}
}
