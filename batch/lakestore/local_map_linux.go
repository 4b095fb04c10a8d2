package lakestore

import "syscall"

// mapPopulate maps every page at once (the whole file is read, checksum
// first), one fault per page saved.
const mapPopulate = syscall.MAP_POPULATE
