package cluster

// entry is one mapped user, kept small because a site may map millions:
// 24 bytes here plus about 10-20 bytes of map slot per user.
type entry struct {
	hash       uint32
	host       uint16 // host slot, see State.slotIP
	ts         int64
	prev, next int32 // timestamp order; -1 ends the list. next links the free list too.
}

const none = -1

// tagDir is the user directory of one tag. Entries live in a slab and form
// a doubly linked list sorted by timestamp (ties keep insertion order), so
// listing is oldest first and expiry only touches the expired head. A
// refresh normally moves an entry to the tail in O(1); a timestamp older
// than the tail's (a login recorded after later ones: another director's
// group commit, a clock behind) walks back from the tail one second at a
// time, over the runs of equal timestamps, not over every entry.
type tagDir struct {
	name       string
	byHash     map[uint32]int32
	slab       []entry
	free       int32
	head, tail int32
	runStart   map[int64]int32 // timestamp -> first entry of its run
}

func newTagDir(name string) *tagDir {
	return &tagDir{name: name, byHash: make(map[uint32]int32), free: none, head: none, tail: none,
		runStart: make(map[int64]int32)}
}

func (d *tagDir) len() int { return len(d.byHash) }

func (d *tagDir) get(hash uint32) (int32, bool) {
	i, ok := d.byHash[hash]
	return i, ok
}

func (d *tagDir) add(hash uint32, host uint16, ts int64) int32 {
	var i int32
	if d.free != none {
		i = d.free
		d.free = d.slab[i].next
	} else {
		i = int32(len(d.slab))
		d.slab = append(d.slab, entry{})
	}
	d.slab[i] = entry{hash: hash, host: host, ts: ts}
	d.byHash[hash] = i
	d.link(i)
	return i
}

// setTS changes an entry's timestamp and keeps the list sorted.
func (d *tagDir) setTS(i int32, ts int64) {
	if d.slab[i].ts == ts {
		return
	}
	d.unlink(i)
	d.slab[i].ts = ts
	d.link(i)
}

func (d *tagDir) remove(i int32) {
	d.unlink(i)
	delete(d.byHash, d.slab[i].hash)
	d.slab[i] = entry{next: d.free, prev: none}
	d.free = i
}

// link inserts entry i after the last entry whose timestamp is <= its own.
func (d *tagDir) link(i int32) {
	ts := d.slab[i].ts
	p := d.tail
	for p != none && d.slab[p].ts > ts {
		p = d.slab[d.runStart[d.slab[p].ts]].prev
	}
	if p == none || d.slab[p].ts != ts {
		d.runStart[ts] = i
	}
	d.slab[i].prev = p
	if p == none {
		d.slab[i].next = d.head
		d.head = i
	} else {
		d.slab[i].next = d.slab[p].next
		d.slab[p].next = i
	}
	if n := d.slab[i].next; n != none {
		d.slab[n].prev = i
	} else {
		d.tail = i
	}
}

func (d *tagDir) unlink(i int32) {
	e := &d.slab[i]
	if d.runStart[e.ts] == i {
		if e.next != none && d.slab[e.next].ts == e.ts {
			d.runStart[e.ts] = e.next
		} else {
			delete(d.runStart, e.ts)
		}
	}
	if e.prev != none {
		d.slab[e.prev].next = e.next
	} else {
		d.head = e.next
	}
	if e.next != none {
		d.slab[e.next].prev = e.prev
	} else {
		d.tail = e.prev
	}
	e.prev, e.next = none, none
}

// removeIf drops every entry for which drop returns true.
func (d *tagDir) removeIf(drop func(*entry) bool) int {
	n := 0
	for i := d.head; i != none; {
		next := d.slab[i].next
		if drop(&d.slab[i]) {
			d.remove(i)
			n++
		}
		i = next
	}
	return n
}

// expire drops entries with ts <= cutoff from the head of the list.
func (d *tagDir) expire(cutoff int64, dropped func(*entry)) int {
	n := 0
	for d.head != none && d.slab[d.head].ts <= cutoff {
		dropped(&d.slab[d.head])
		d.remove(d.head)
		n++
	}
	return n
}

// each visits entries oldest first until fn returns false.
func (d *tagDir) each(fn func(*entry) bool) {
	for i := d.head; i != none; i = d.slab[i].next {
		if !fn(&d.slab[i]) {
			return
		}
	}
}
