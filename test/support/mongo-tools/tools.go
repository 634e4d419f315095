//go:build tools

// Pins MongoDB's Database Tools for the tests: mongodump and mongorestore are built from this module's
// requirements (scripts/mongo-tools.sh), the same version as the agent image's package.
package tools

import (
	_ "github.com/mongodb/mongo-tools/mongodump/main"
	_ "github.com/mongodb/mongo-tools/mongorestore/main"
)
