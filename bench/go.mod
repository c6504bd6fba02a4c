module github.com/golockfile/lockfile/bench

go 1.26.0

replace github.com/golockfile/lockfile => ../

require (
	github.com/gofrs/flock v0.13.2
	github.com/golockfile/lockfile v0.0.0-00010101000000-000000000000
	golang.org/x/sys v0.50.0
)
