package cnclip

// Test helpers shared with the external tests (package cnclip_test).
var CheckParamGrads = checkParamGrads

// GradManifest is the gradient part of the fixtures' manifest.json.
type GradManifest = gradManifest

// TokensJSON is the fixtures' tokens.json.
type TokensJSON = tokensJSON
