module github.com/goclip/goclip

go 1.26
