//go:build unix && !linux

package lakestore

const mapPopulate = 0
