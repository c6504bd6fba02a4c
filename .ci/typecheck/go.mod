module lockfile-ci/typecheck

go 1.26.0
