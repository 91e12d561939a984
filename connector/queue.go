package connector

import "sync"

// queue is the connector's only buffer: a bounded FIFO in memory that drops
// the oldest packet when full. Sensors resend what is not acknowledged, so
// an old packet is worth less than a new one, and nothing is ever written
// to disk.
type queue struct {
	mu      sync.Mutex
	items   [][]byte
	head    int
	n       int
	dropped uint64
	ready   chan struct{} // has a token while the queue is non-empty
}

func newQueue(size int) *queue {
	return &queue{items: make([][]byte, size), ready: make(chan struct{}, 1)}
}

// push adds b, dropping the oldest item if the queue is full; it reports
// whether something was dropped.
func (q *queue) push(b []byte) (dropped bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == len(q.items) {
		q.items[q.head] = nil
		q.head = (q.head + 1) % len(q.items)
		q.n--
		q.dropped++
		dropped = true
	}
	q.items[(q.head+q.n)%len(q.items)] = b
	q.n++
	select {
	case q.ready <- struct{}{}:
	default:
	}
	return dropped
}

// requeue puts items whose publish failed back at the front, in their
// order, to go out before anything newer. If the queue fills, they are the
// oldest items, so the earliest of them are dropped and counted; it
// returns how many.
func (q *queue) requeue(bs [][]byte) (dropped int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i := len(bs) - 1; i >= 0; i-- {
		if q.n == len(q.items) {
			dropped = i + 1
			q.dropped += uint64(dropped)
			break
		}
		q.head = (q.head - 1 + len(q.items)) % len(q.items)
		q.items[q.head] = bs[i]
		q.n++
	}
	if q.n > 0 {
		select {
		case q.ready <- struct{}{}:
		default:
		}
	}
	return dropped
}

// pop removes the oldest item, or reports false when empty.
func (q *queue) pop() ([]byte, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == 0 {
		return nil, false
	}
	b := q.items[q.head]
	q.items[q.head] = nil
	q.head = (q.head + 1) % len(q.items)
	q.n--
	if q.n > 0 {
		select {
		case q.ready <- struct{}{}:
		default:
		}
	}
	return b, true
}

func (q *queue) stats() (length int, dropped uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n, q.dropped
}
