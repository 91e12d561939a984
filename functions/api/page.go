package api

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"google.golang.org/api/iterator"
	"strconv"
	"sync"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sealedsense/sealedsense/functions/api/pagetoken"
	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/registry"
)

const (
	defaultPageSize = 100
	maxPageSize     = 1000
	pageKeyAAD      = "sealedsense/api-page-token-key"
)

// pager seals page tokens under a key that only the API can unwrap, stored
// KMS-wrapped in Firestore so every instance shares it.
type pager struct {
	fs      *firestore.Client
	secrets Wrapper
	reader  custody.Unwrapper

	mu  sync.Mutex
	key []byte
}

// sealingKey loads the page-token key, creating it on first use by any
// instance.
func (pg *pager) sealingKey(ctx context.Context) ([]byte, error) {
	pg.mu.Lock()
	defer pg.mu.Unlock()
	if pg.key != nil {
		return pg.key, nil
	}
	ref := pg.fs.Collection(registry.CloudCollection).Doc("apiPageTokens")
	snap, err := ref.Get(ctx)
	if status.Code(err) == codes.NotFound {
		k := make(custody.Secret, pagetoken.KeySize)
		if _, err := rand.Read(k); err != nil {
			return nil, err
		}
		wrapped, err := pg.secrets.Wrap(ctx, k, []byte(pageKeyAAD))
		if err != nil {
			return nil, err
		}
		if _, err := ref.Create(ctx, map[string]any{"wrappedKey": wrapped}); status.Code(err) != codes.AlreadyExists && err != nil {
			return nil, err
		}
		// Whoever created it first won; read the winner's.
		if snap, err = ref.Get(ctx); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	wrapped, _ := snap.Data()["wrappedKey"].([]byte)
	k, err := pg.reader.Unwrap(ctx, wrapped, []byte(pageKeyAAD))
	if err != nil {
		return nil, err
	}
	pg.key = k
	return k, nil
}

func (pg *pager) seal(ctx context.Context, scope string, c pagetoken.Cursor) (string, error) {
	key, err := pg.sealingKey(ctx)
	if err != nil {
		return "", err
	}
	return pagetoken.Seal(key, scope, c)
}

func (pg *pager) open(ctx context.Context, scope, tok string) (pagetoken.Cursor, error) {
	key, err := pg.sealingKey(ctx)
	if err != nil {
		return pagetoken.Cursor{}, errUnavailable(err)
	}
	c, err := pagetoken.Open(key, scope, tok)
	if err != nil {
		return pagetoken.Cursor{}, errBadRequest("invalid pageToken")
	}
	return c, nil
}

// pageSize reads pageSize: 1 to 1000, default 100.
func (c *call) pageSize() (int, error) {
	v := c.r.URL.Query().Get("pageSize")
	if v == "" {
		return defaultPageSize, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxPageSize {
		return 0, errBadRequest("pageSize must be 1 to %d", maxPageSize)
	}
	return n, nil
}

// ordering says how a listing is ordered: by Field (empty for none) and
// then by document id. Keep, when set, drops documents the query could not
// filter out.
type ordering struct {
	Field string
	Path  firestore.FieldPath // Field's path; nil means Field is one plain name
	Keep  func(*firestore.DocumentSnapshot) bool
}

// page runs q from the page token's cursor and returns at most pageSize
// documents and the token of the next page. q must be ordered by o.Field
// (when set) and then by document id; filters names what else shapes q,
// so that a token of another query is refused.
func (c *call) page(q firestore.Query, o ordering, filters string) ([]*firestore.DocumentSnapshot, string, error) {
	size, err := c.pageSize()
	if err != nil {
		return nil, "", err
	}
	scope := c.r.Pattern + "\x00" + c.project + "\x00" + c.r.PathValue("account") + "\x00" + c.r.PathValue("device") + "\x00" + o.Field + "\x00" + filters
	if tok := c.r.URL.Query().Get("pageToken"); tok != "" {
		cur, err := c.s.pages.open(c.r.Context(), scope, tok)
		if err != nil {
			return nil, "", err
		}
		switch {
		case o.Field == "":
			q = q.StartAfter(cur.ID)
		case cur.T != nil:
			q = q.StartAfter(*cur.T, cur.ID)
		default:
			q = q.StartAfter(cur.V, cur.ID)
		}
	}
	if o.Keep == nil {
		q = q.Limit(size + 1)
	}
	it := q.Documents(c.r.Context())
	defer it.Stop()
	var docs []*firestore.DocumentSnapshot
	for len(docs) <= size {
		d, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return nil, "", errUnavailable(err)
		}
		if o.Keep == nil || o.Keep(d) {
			docs = append(docs, d)
		}
	}
	if len(docs) <= size {
		return docs, "", nil
	}
	docs = docs[:size]
	last := docs[size-1]
	cur := pagetoken.Cursor{ID: last.Ref.ID}
	if o.Field != "" {
		path := o.Path
		if path == nil {
			path = firestore.FieldPath{o.Field}
		}
		v, err := last.DataAtPath(path)
		if err != nil {
			return nil, "", fmt.Errorf("api: page: %w", err)
		}
		if t, ok := v.(time.Time); ok {
			cur.T = &t
		} else {
			cur.V = v
		}
	}
	next, err := c.s.pages.seal(c.r.Context(), scope, cur)
	if err != nil {
		return nil, "", errUnavailable(err)
	}
	return docs, next, nil
}
