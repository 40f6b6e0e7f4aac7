// The tests check the published hash vectors (test/vectors/hash-vectors.json) with an
// implementation independent of the TypeScript core: github.com/cespare/xxhash/v2, the XXH64 that
// a Go controller joining a SlotMap would use. See docs/hashing.md.
package hashvectors

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// vectorsFile is relative to this package directory (go test runs in it).
var vectorsFile = filepath.Join("..", "..", "test", "vectors", "hash-vectors.json")

type vector struct {
	Key   *string `json:"key"`
	XXH64 string  `json:"xxh64"`
	Slot  *int    `json:"slot"`
}

// slotOf is the slot rule of DESIGN.md: the low 14 bits of XXH64 (seed 0) of the UTF-8 key.
func slotOf(key string) int { return int(xxhash.Sum64String(key) & 0x3fff) }

func loadVectors(t *testing.T) []vector {
	t.Helper()
	data, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatalf("read %s: %v", vectorsFile, err)
	}
	var vs []vector
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&vs); err != nil {
		t.Fatalf("parse %s: %v", vectorsFile, err)
	}
	return vs
}

func TestVectorsMatchCespareXXHash(t *testing.T) {
	vs := loadVectors(t)
	if len(vs) < 30 {
		t.Fatalf("%s: %d vectors, want at least 30", vectorsFile, len(vs))
	}
	seen := map[string]int{}
	for i, v := range vs {
		if v.Key == nil || v.Slot == nil {
			t.Errorf("vector %d: missing key or slot", i)
			continue
		}
		key := *v.Key
		if j, dup := seen[key]; dup {
			t.Errorf("vector %d: key %q repeats vector %d", i, key, j)
		}
		seen[key] = i
		wantHex := fmt.Sprintf("%016x", xxhash.Sum64String(key))
		if v.XXH64 != wantHex {
			t.Errorf("vector %d key %q: xxh64 %q, cespare/xxhash says %q", i, key, v.XXH64, wantHex)
		}
		if *v.Slot != slotOf(key) {
			t.Errorf("vector %d key %q: slot %d, cespare/xxhash says %d", i, key, *v.Slot, slotOf(key))
		}
	}
}

// The vector set must cover the key shapes docs/hashing.md promises; a pruned file fails here.
func TestVectorsCoverage(t *testing.T) {
	vs := loadVectors(t)
	var empty, core, named, clusterScoped, long, nonASCII bool
	for _, v := range vs {
		if v.Key == nil {
			continue
		}
		k := *v.Key
		switch {
		case k == "":
			empty = true
		case len(k) > 32:
			long = true
		}
		for _, r := range k {
			if r > 0x7f {
				nonASCII = true
			}
		}
		parts := strings.Split(k, "/")
		if len(parts) == 4 {
			core = core || parts[0] == ""
			named = named || parts[0] != ""
			clusterScoped = clusterScoped || parts[2] == ""
		}
	}
	for name, ok := range map[string]bool{
		"empty key": empty, "core group": core, "named group": named,
		"cluster-scoped": clusterScoped, "longer than 32 bytes": long, "non-ASCII": nonASCII,
	} {
		if !ok {
			t.Errorf("no vector for %s", name)
		}
	}
}

// Known XXH64 values from the xxHash reference, so this test cannot pass with a wrong library.
func TestCespareKnownValues(t *testing.T) {
	for key, want := range map[string]uint64{"": 0xef46db3751d8e999, "a": 0xd24ec4f1a98c6e5b, "abc": 0x44bc2cf5ad770999} {
		if got := xxhash.Sum64String(key); got != want {
			t.Errorf("xxhash(%q) = %016x, want %016x", key, got, want)
		}
	}
}
