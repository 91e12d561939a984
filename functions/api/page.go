package api

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/api/iterator"

	"github.com/sealedsense/sealedsense/functions/api/pagetoken"
	"github.com/sealedsense/sealedsense/shared/apikey"
	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/store"
)

const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

// pager seals page tokens under a key that only the API can unwrap, stored
// KMS-wrapped in Firestore so every instance shares it.
type pager struct {
	db      *store.DB
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
	wrapped, err := pg.db.PageTokenKey(ctx)
	if store.IsNotFound(err) {
		wrapped, err = pg.createKey(ctx)
	}
	if err != nil {
		return nil, err
	}
	k, err := pg.reader.Unwrap(ctx, wrapped, apikey.PageKeyAAD())
	if err != nil {
		return nil, err
	}
	pg.key = k
	return k, nil
}

// createKey makes and stores a page-token key, and returns the stored
// one: another instance's, if it was first.
func (pg *pager) createKey(ctx context.Context) ([]byte, error) {
	k := make(custody.Secret, pagetoken.KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	wrapped, err := pg.secrets.Wrap(ctx, k, apikey.PageKeyAAD())
	if err != nil {
		return nil, err
	}
	return pg.db.CreatePageTokenKey(ctx, wrapped)
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

// ordering says how a listing is ordered: by the field at Path (nil for
// none, as the store's query returned it) and then by document id. Keep,
// when set, drops documents the query could not filter out.
type ordering struct {
	Path firestore.FieldPath
	Keep func(*firestore.DocumentSnapshot) bool
}

// field names the order in a page token's scope, as the client named it
// (order_by's labels.<key> is the path labels, <key>).
func (o ordering) field() string { return strings.Join(o.Path, ".") }

// page runs q from the page token's cursor and returns at most pageSize
// documents and the token of the next page. q must be ordered by o.Path
// (when set) and then by document id; filters names what else shapes q,
// so that a token of another query is refused.
func (c *call) page(q firestore.Query, o ordering, filters string) ([]*firestore.DocumentSnapshot, string, error) {
	size, err := c.pageSize()
	if err != nil {
		return nil, "", err
	}
	scope := c.r.Pattern + "\x00" + c.project + "\x00" + c.r.PathValue("account") + "\x00" + c.r.PathValue("device") + "\x00" + o.field() + "\x00" + filters
	if tok := c.r.URL.Query().Get("pageToken"); tok != "" {
		cur, err := c.s.pages.open(c.r.Context(), scope, tok)
		if err != nil {
			return nil, "", err
		}
		q = startAfter(q, o, cur)
	}
	if o.Keep == nil {
		q = q.Limit(size + 1)
	}
	docs, err := collect(q.Documents(c.r.Context()), size+1, o.Keep)
	if err != nil || len(docs) <= size {
		return docs, "", err
	}
	docs = docs[:size]
	cur, err := cursorAt(docs[size-1], o)
	if err != nil {
		return nil, "", err
	}
	next, err := c.s.pages.seal(c.r.Context(), scope, cur)
	if err != nil {
		return nil, "", errUnavailable(err)
	}
	return docs, next, nil
}

// startAfter continues q after the cursor of a page token.
func startAfter(q firestore.Query, o ordering, cur pagetoken.Cursor) firestore.Query {
	switch {
	case o.Path == nil:
		return q.StartAfter(cur.ID)
	case cur.T != nil:
		return q.StartAfter(*cur.T, cur.ID)
	default:
		return q.StartAfter(cur.V, cur.ID)
	}
}

// collect reads up to n documents of it that keep takes (nil: all).
func collect(it *firestore.DocumentIterator, n int, keep func(*firestore.DocumentSnapshot) bool) ([]*firestore.DocumentSnapshot, error) {
	defer it.Stop()
	var docs []*firestore.DocumentSnapshot
	for len(docs) < n {
		d, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return nil, errUnavailable(err)
		}
		if keep == nil || keep(d) {
			docs = append(docs, d)
		}
	}
	return docs, nil
}

// cursorAt is the cursor after last: its id and its order value.
func cursorAt(last *firestore.DocumentSnapshot, o ordering) (pagetoken.Cursor, error) {
	cur := pagetoken.Cursor{ID: last.Ref.ID}
	if o.Path == nil {
		return cur, nil
	}
	v, err := last.DataAtPath(o.Path)
	if err != nil {
		return cur, fmt.Errorf("api: page: %w", err)
	}
	if t, ok := v.(time.Time); ok {
		cur.T = &t
	} else {
		cur.V = v
	}
	return cur, nil
}
