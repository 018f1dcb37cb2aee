module github.com/dmlgo/dmlgo/backend/cpu/_generate

go 1.26.0
