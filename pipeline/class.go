package pipeline

import "errors"

// ClassError gives an error a fixed class: it is how the sources, the
// destination and the engine mark the errors they create (a refused
// certificate is fatal, a dropped connection transient, a message the
// server cannot serve per message). Create it with Classify or its
// shorthands; errors.Is and errors.As see through it to Err.
type ClassError struct {
	Err   error
	Class Class
	// permanent: a per-message error that can never succeed (Permanent).
	permanent bool
}

func (e *ClassError) Error() string     { return e.Err.Error() }
func (e *ClassError) Unwrap() error     { return e.Err }
func (e *ClassError) ErrorClass() Class { return e.Class }

// Permanent reports whether the message can never be taken, so that it is
// skipped for good rather than tried again by the next run: marked so by
// the function Permanent, or said by an error it wraps (e.g. a server's
// TOOBIG).
func (e *ClassError) Permanent() bool { return e.permanent || isPermanent(e.Err) }

var _ Classifier = (*ClassError)(nil)

// Classify returns err with class c; nil stays nil.
func Classify(c Class, err error) error {
	if err == nil {
		return nil
	}
	return &ClassError{Err: err, Class: c}
}

// Fatal marks err as stopping the account (auth, configuration, ledger).
func Fatal(err error) error { return Classify(ClassFatal, err) }

// Transient marks err as ending the attempt: reconnect with backoff, resume.
func Transient(err error) error { return Classify(ClassTransient, err) }

// PerMessage marks err as concerning one message only: it is failed and
// tried again by the next run.
func PerMessage(err error) error { return Classify(ClassPerMessage, err) }

// Permanent marks err as concerning one message that can never be taken
// (larger than the server accepts, bytes IMAP cannot carry): it is skipped
// for good.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &ClassError{Err: err, Class: ClassPerMessage, permanent: true}
}

// isPermanent reports whether a per-message refusal can never succeed
// (an error with Permanent() true, e.g. imapdst's TOOBIG).
func isPermanent(err error) bool {
	var p interface{ Permanent() bool }
	return errors.As(err, &p) && p.Permanent()
}
