package internal
import (
 _ "github.com/emersion/go-smtp"
 _ "github.com/emersion/go-message"
 _ "github.com/jhillyerd/enmime/v2"
 _ "github.com/mholt/archives"
 _ "github.com/BurntSushi/toml"
 _ "github.com/dlclark/regexp2"
 _ "github.com/gabriel-vasile/mimetype"
)
