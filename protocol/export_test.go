package protocol

import "reflect"

// BodyEnvelopeType is the type ParseBody decodes into, for
// TestBodyEnvelopeIsEnvelope.
var BodyEnvelopeType = reflect.TypeFor[bodyEnvelope]()
