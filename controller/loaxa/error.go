package loaxa

import (
	"errors"
	"fmt"
)

// Application error codes. The HTTP layer maps each to a status.
const (
	EConflict     = "conflict"     // 409: already exists / state does not allow it
	EInternal     = "internal"     // 500: our fault; details only in the log
	EInvalid      = "invalid"      // 400: the request is wrong; the message says how
	ENotFound     = "not_found"    // 404
	EUnauthorized = "unauthorized" // 401: no or bad credentials
	EForbidden    = "forbidden"    // 403: authenticated but not allowed
	ETooLarge     = "too_large"    // 413
	EUnsupported  = "unsupported"  // 415: media type or audio format not accepted
	EUnavailable  = "unavailable"  // 503: a dependency (broker, TTS) is down
	ETooMany      = "too_many"     // 429: too many attempts; wait and try again
)

// Reasons name refusals that a program (the web console) must tell apart
// within their code, to say them in the user's language. An Error has one
// only where its code and route leave it ambiguous.
const (
	// ReasonSpeechUnavailable: text cannot be read out, as the controller
	// has no speech engine (espeak-ng not installed).
	ReasonSpeechUnavailable = "speech_unavailable"
	// ReasonUploadTooLarge: an uploaded file is over the controller's
	// upload limit (413, which a JSON body over its own limit also is).
	ReasonUploadTooLarge = "upload_too_large"
	// ReasonAudioUnknown: an uploaded file is neither WAV nor MP3 (415,
	// which a WAV or MP3 of a kind not accepted also is).
	ReasonAudioUnknown = "audio_unknown"
	// ReasonAudioSilent: an uploaded file holds no sound: it is empty,
	// has no audio in it, or is silent (a recording made with the
	// microphone off) (400).
	ReasonAudioSilent = "audio_silent"
	// ReasonUsernameTaken, ReasonAreaExists, ReasonNodeExists: a new
	// user's, area's or node's id is in use (409 of their POST).
	ReasonUsernameTaken = "username_taken"
	ReasonAreaExists    = "area_exists"
	ReasonNodeExists    = "node_exists"
	// ReasonBulletinUnplayable: an active bulletin cannot be scheduled
	// (UnplayableError), so a programme that includes it cannot be
	// compiled (409).
	ReasonBulletinUnplayable = "bulletin_unplayable"
	// ReasonSettingRefused: an area's time zone or a session's times, as
	// stored, are refused by this version, so a programme that needs them
	// cannot be compiled (409).
	ReasonSettingRefused = "setting_refused"
	// ReasonEmergencyStopped: an emergency cannot be stopped, as it was
	// stopped already (409): by a colleague, or from another page.
	ReasonEmergencyStopped = "emergency_stopped"
	// ReasonEmergencyExpired: an emergency cannot be stopped, as it has
	// expired (409): no cluster starts it any more.
	ReasonEmergencyExpired = "emergency_expired"
	// ReasonAllClearSent: an emergency's all-clear cannot be sent, as it
	// was sent already, or is being sent (409): by a colleague, or from
	// another page.
	ReasonAllClearSent = "all_clear_sent"
	// ReasonOutsideArea: an area, or something in one, is outside the
	// signed-in user's area (403), as a page read before their area was
	// changed still offers it. A role's refusal has none: its words differ.
	ReasonOutsideArea = "outside_area"
	// ReasonBulletinElsewhere: an announcement named plays nowhere in the
	// signed-in user's area (403), as a page read before its clusters
	// moved to another area, or before the user's area changed, still
	// offers it.
	ReasonBulletinElsewhere = "bulletin_elsewhere"
	// ReasonSpeechNoWords: text to be read out has no words, only
	// punctuation or symbols, so it gives no speech (400).
	ReasonSpeechNoWords = "speech_no_words"
	// ReasonSessionGone: a session named by a bulletin (400) or changed
	// or deleted (404) is not there: it was deleted, by a colleague or from
	// another page, while a page still offered it.
	ReasonSessionGone = "session_gone"
	// ReasonStartPast: a one-off bulletin's time has passed by the
	// controller's clock (400), which a page that took the controller's
	// time long ago, or just before that time, did not see.
	ReasonStartPast = "start_past"
	// ReasonStartTooFar: a bulletin's first play is more than a year
	// ahead (400).
	ReasonStartTooFar = "start_too_far"
	// ReasonStartTooOld: a recurring bulletin's start, its first day, is
	// more than a year ago (400).
	ReasonStartTooOld = "start_too_old"
	// ReasonRecurrenceOver: a recurring bulletin has no play left from now
	// on (400): its end date or count has passed, or its days match none.
	ReasonRecurrenceOver = "recurrence_over"
	// ReasonSessionTimesRefused: a change of a session whose stored times
	// this version refuses (ReasonSettingRefused) would keep them, its
	// days most often (400): the change has to give valid ones.
	ReasonSessionTimesRefused = "session_times_refused"
	// ReasonCapDecided: a CAP alert cannot be approved, as it waits for
	// approval no more (409): a colleague approved it, or its sender
	// cancelled or updated it, while a page still offered it.
	ReasonCapDecided = "cap_decided"
	// ReasonCapExpired: a CAP alert cannot be approved, as it has expired
	// (409), while a page still offered it.
	ReasonCapExpired = "cap_expired"
)

// Error is an error a user can act on: a code and a message that says what
// was wrong and how to fix it. Internal errors are never shown to users; they
// surface as EInternal with a generic message.
type Error struct {
	Code    string
	Message string
	// Reason, when set, is one of the Reason constants.
	Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("loaxa error: code=%s message=%s", e.Code, e.Message)
}

// Errorf returns an *Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EInternal
// for other non-nil errors, and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// ErrorReason returns the Reason of the first *Error in err's chain, or "".
func ErrorReason(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// ErrorMessage returns the user-facing message of err.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "Internal error."
}
