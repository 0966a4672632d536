package seeder

// Blob bodies take turns to be read from the origin (Seeder.reads): a few
// at a time from each origin registry, in the order the blobs were first
// asked for.
//
// Why: a mirror reads an image's layers ahead, all at once, in manifest
// order, so the seeder is asked for many blobs together. Read together,
// they would share the origin's link evenly to the end, and every layer
// would be whole only when all are: nobody's pull can verify and unpack
// its first layer before the last byte of the image has crossed the link.
// Read a few at a time, in order, the first layers finish early, and the
// image as a whole finishes no later. A few rather than one keep the link
// busy while one body ends and the next starts, and keep one slow blob
// from holding up the rest.
//
// The origin's answer headers do not wait for a read turn: each blob's
// torrent is known at once, and mirrors set up their downloads while
// earlier layers are still read. A blob waiting its turn keeps its answer
// open, unread; an origin that drops such a connection fails that fetch,
// and the next ask starts it again.

// quickRead is the largest body read at once, out of turn: it holds the
// link for a moment, and a client often needs it first (an image's config
// comes before its layers), while the queue is there for big layers.
const quickRead = 1 << 20
