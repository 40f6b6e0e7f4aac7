// Package hashvectors holds only tests: `go test ./...` checks test/vectors/hash-vectors.json
// against github.com/cespare/xxhash/v2. See docs/hashing.md.
package hashvectors
