package lakestore

import "context"

// Group writes many new objects that are made durable together: each
// object is visible once its writer's Commit returns, and every object
// committed through the group is durable once Sync returns. A lake writer
// commits a flush's files through a group and its manifest record after
// the group's Sync, so the record never lists a file that a crash could
// lose, while the flush pays for making a directory's entries durable once
// instead of once per file.
type Group interface {
	// Create is Store.Create for an object of the group.
	Create(ctx context.Context, key string) (Writer, error)
	// Sync makes every object committed through the group so far durable.
	Sync(ctx context.Context) error
}

// grouper is a store with a cheaper way of making many objects durable
// together.
type grouper interface {
	newGroup() Group
}

// NewGroup returns a group writing to st. On a store whose commits are
// durable one by one (object storage), the group's Create is the store's
// and Sync has nothing to do.
func NewGroup(st Store) Group {
	if g, ok := st.(grouper); ok {
		return g.newGroup()
	}
	return eachDurable{st}
}

// eachDurable is the group of a store whose every commit is durable.
type eachDurable struct{ st Store }

func (g eachDurable) Create(ctx context.Context, key string) (Writer, error) {
	return g.st.Create(ctx, key)
}

func (eachDurable) Sync(context.Context) error { return nil }
