module pipeguard/stages/allowedips/internal/bartcmp

go 1.26.0

require pipeguard v0.0.0

require github.com/gaissmai/bart v0.30.0

replace pipeguard => ../../../..
