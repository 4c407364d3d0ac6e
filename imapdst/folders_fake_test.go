package imapdst

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/internal/imapconn"
	"github.com/mailferry/mailferry/internal/testkit/imapfake"
	"github.com/mailferry/mailferry/mapping"
	"github.com/mailferry/mailferry/pipeline"
)

// controlLogin is the script of a go-imap control session up to the
// authenticated state; caps are advertised after login.
func controlLogin(caps string) []imapfake.Step {
	return []imapfake.Step{
		imapfake.Send("* OK [CAPABILITY IMAP4rev1] fake ready\r\n"),
		imapfake.Expect("T1 LOGIN \"alice\" \"s3cret\"\r\n"),
		imapfake.Send("T1 OK [CAPABILITY " + strings.TrimSpace("IMAP4rev1 "+caps) + "] logged in\r\n"),
	}
}

// dialFakeControl returns a Destination with only a control connection to
// a scripted server.
func dialFakeControl(t *testing.T, steps ...imapfake.Step) (*Destination, *imapfake.Server) {
	t.Helper()
	srv := imapfake.Start(t, steps...)
	ctl, err := dialControl(context.Background(), testOptions(srv.Addr()).withDefaults())
	if err != nil {
		t.Fatalf("dialControl: %v", err)
	}
	t.Cleanup(func() { _ = ctl.conn.Abort() })
	return &Destination{ctl: ctl}, srv
}

// TestCreateTranscript drives create, the part of EnsureMailboxUse after
// LIST found no mailbox (go-imap beta.8 sends STATUS items in map order,
// which a transcript cannot expect).
func TestCreateTranscript(t *testing.T) {
	tests := []struct {
		name   string
		caps   string
		mbox   string
		use    string
		script []imapfake.Step
	}{
		{
			name: "CREATE with USE when advertised", caps: "CREATE-SPECIAL-USE", mbox: "Sent Items", use: `\Sent`,
			script: []imapfake.Step{
				imapfake.Expect("T2 CREATE \"Sent Items\" (USE (\\Sent))\r\n"),
				imapfake.Send("T2 OK created\r\n"),
			},
		},
		{
			name: "plain CREATE without CREATE-SPECIAL-USE", caps: "SPECIAL-USE", mbox: "Sent", use: `\Sent`,
			script: []imapfake.Step{
				imapfake.Expect("T2 CREATE \"Sent\"\r\n"),
				imapfake.Send("T2 OK created\r\n"),
			},
		},
		{
			name: "USE refused falls back to plain CREATE", caps: "CREATE-SPECIAL-USE", mbox: "Sent", use: `\Sent`,
			script: []imapfake.Step{
				imapfake.Expect("T2 CREATE \"Sent\" (USE (\\Sent))\r\n"),
				imapfake.Send("T2 NO [USEATTR] another mailbox has \\Sent\r\n"),
				imapfake.Expect("T3 CREATE \"Sent\"\r\n"),
				imapfake.Send("T3 OK created\r\n"),
			},
		},
		{
			name: "ALREADYEXISTS after USE is success", caps: "CREATE-SPECIAL-USE", mbox: "Junk", use: `\Junk`,
			script: []imapfake.Step{
				imapfake.Expect("T2 CREATE \"Junk\" (USE (\\Junk))\r\n"),
				imapfake.Send("T2 NO [ALREADYEXISTS] exists\r\n"),
			},
		},
		{
			name: "ALREADYEXISTS on plain CREATE is success", caps: "", mbox: "Junk",
			script: []imapfake.Step{
				imapfake.Expect("T2 CREATE \"Junk\"\r\n"),
				imapfake.Send("T2 NO [ALREADYEXISTS] exists\r\n"),
			},
		},
		{
			name: "missing parents created, then the mailbox", caps: "", mbox: "a.b.c",
			script: []imapfake.Step{
				imapfake.Expect("T2 CREATE \"a.b.c\"\r\n"),
				imapfake.Send("T2 NO parent does not exist\r\n"),
				imapfake.Expect("T3 LIST \"\" \"\"\r\n"),
				imapfake.Send("* LIST (\\Noselect) \".\" \"\"\r\nT3 OK done\r\n"),
				imapfake.Expect("T4 CREATE \"a\"\r\n"),
				imapfake.Send("T4 NO [ALREADYEXISTS] exists\r\n"),
				imapfake.Expect("T5 CREATE \"a.b\"\r\n"),
				imapfake.Send("T5 OK created\r\n"),
				imapfake.Expect("T6 CREATE \"a.b.c\"\r\n"),
				imapfake.Send("T6 OK created\r\n"),
			},
		},
		{
			name: "parents then USE again", caps: "CREATE-SPECIAL-USE", mbox: "Old/Sent", use: `\Sent`,
			script: []imapfake.Step{
				imapfake.Expect("T2 CREATE \"Old/Sent\" (USE (\\Sent))\r\n"),
				imapfake.Send("T2 NO no parent\r\n"),
				imapfake.Expect("T3 CREATE \"Old/Sent\"\r\n"),
				imapfake.Send("T3 NO no parent\r\n"),
				imapfake.Expect("T4 LIST \"\" \"\"\r\n"),
				imapfake.Send("* LIST (\\Noselect) \"/\" \"\"\r\nT4 OK done\r\n"),
				imapfake.Expect("T5 CREATE \"Old\"\r\n"),
				imapfake.Send("T5 OK created\r\n"),
				imapfake.Expect("T6 CREATE \"Old/Sent\" (USE (\\Sent))\r\n"),
				imapfake.Send("T6 OK created\r\n"),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, srv := dialFakeControl(t, append(controlLogin(tt.caps), tt.script...)...)
			if err := d.ctl.create(context.Background(), tt.mbox, tt.use); err != nil {
				t.Fatalf("create(%q, %q): %v", tt.mbox, tt.use, err)
			}
			_ = d.ctl.conn.Abort()
			if err := srv.Wait(); err != nil {
				t.Errorf("script: %v", err)
			}
		})
	}
}

func TestEnsureMailboxUseParentsStillRefused(t *testing.T) {
	d, _ := dialFakeControl(t, append(controlLogin(""),
		imapfake.Expect("T2 LIST \"\" \"x/y\"\r\n"),
		imapfake.Send("T2 OK done\r\n"),
		// No NAMESPACE: the separator, once per account (no prefix).
		imapfake.Expect("T3 LIST \"\" \"\"\r\n"),
		imapfake.Send("* LIST (\\Noselect) \"/\" \"\"\r\nT3 OK done\r\n"),
		imapfake.Expect("T4 CREATE \"x/y\"\r\n"),
		imapfake.Send("T4 NO [NOPERM] not allowed\r\n"),
		imapfake.Expect("T5 LIST \"\" \"\"\r\n"),
		imapfake.Send("* LIST (\\Noselect) \"/\" \"\"\r\nT5 OK done\r\n"),
		imapfake.Expect("T6 CREATE \"x\"\r\n"),
		imapfake.Send("T6 NO [NOPERM] not allowed\r\n"),
		imapfake.Expect("T7 CREATE \"x/y\"\r\n"),
		imapfake.Send("T7 NO [NOPERM] not allowed\r\n"),
		imapfake.Drain(),
	)...)
	_, err := d.EnsureMailboxUse(context.Background(), "x/y", "")
	var re *ReplyError
	if !errors.As(err, &re) || re.Code != "NOPERM" || pipeline.ClassOf(err) != pipeline.ClassFatal {
		t.Fatalf("EnsureMailboxUse = %v, want a fatal NOPERM *ReplyError", err)
	}
}

func TestEnsureMailboxUseRejectsBadUse(t *testing.T) {
	d := &Destination{}
	for _, use := range []string{`\`, `\Sent)`, "\\Se nt"} {
		if _, err := d.EnsureMailboxUse(context.Background(), "x", use); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("EnsureMailboxUse(x, %q) = %v, want ErrInvalidArgument", use, err)
		}
	}
}

func TestFoldersTranscript(t *testing.T) {
	tests := []struct {
		name   string
		caps   string
		script []imapfake.Step
		want   FolderList
	}{
		{
			name: "courier style: NAMESPACE prefix, plain LIST",
			caps: "NAMESPACE",
			script: []imapfake.Step{
				imapfake.Expect("T2 NAMESPACE\r\n"),
				imapfake.Send("* NAMESPACE ((\"INBOX.\" \".\")) NIL ((\"#shared.\" \".\"))\r\nT2 OK done\r\n"),
				imapfake.Expect("T3 LIST \"\" \"*\"\r\n"),
				imapfake.Send("* LIST (\\HasChildren) \".\" \"INBOX\"\r\n" +
					"* LIST (\\HasNoChildren) \".\" \"INBOX.Sent\"\r\n" +
					"* LIST (\\HasNoChildren) \".\" \"INBOX.Entw&APw-rfe\"\r\n" +
					"T3 OK done\r\n"),
			},
			want: FolderList{Delim: '.', Prefix: "INBOX.", Folders: []mapping.Folder{
				{Name: "INBOX", Delim: '.', Attrs: []string{`\HasChildren`}},
				{Name: "INBOX.Sent", Delim: '.', Attrs: []string{`\HasNoChildren`}},
				{Name: "INBOX.Entwürfe", Delim: '.', Attrs: []string{`\HasNoChildren`}},
			}},
		},
		{
			name: "LIST-EXTENDED with SPECIAL-USE asks for them",
			caps: "LIST-EXTENDED SPECIAL-USE CREATE-SPECIAL-USE",
			script: []imapfake.Step{
				imapfake.Expect("T2 LIST \"\" \"*\" RETURN (SUBSCRIBED SPECIAL-USE)\r\n"),
				imapfake.Send("* LIST (\\Subscribed) \"/\" \"inbox\"\r\n" +
					"* LIST (\\Subscribed \\Sent) \"/\" \"Sent\"\r\n" +
					"T2 OK done\r\n"),
			},
			want: FolderList{Delim: '/', SpecialUse: true, CreateSpecialUse: true, Subscriptions: true, Folders: []mapping.Folder{
				{Name: "INBOX", Delim: '/', Attrs: []string{`\Subscribed`}},
				{Name: "Sent", Delim: '/', Attrs: []string{`\Subscribed`, `\Sent`}},
			}},
		},
		{
			name: "no INBOX in the list: LIST \"\" \"\" gives the separator",
			caps: "",
			script: []imapfake.Step{
				imapfake.Expect("T2 LIST \"\" \"*\"\r\n"),
				imapfake.Send("T2 OK done\r\n"),
				imapfake.Expect("T3 LIST \"\" \"\"\r\n"),
				imapfake.Send("* LIST (\\Noselect) \"/\" \"\"\r\nT3 OK done\r\n"),
			},
			want: FolderList{Delim: '/'},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, srv := dialFakeControl(t, append(controlLogin(tt.caps), tt.script...)...)
			got, err := d.Folders(context.Background())
			if err != nil {
				t.Fatalf("Folders: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Folders = %+v, want %+v", got, tt.want)
			}
			_ = d.ctl.conn.Abort()
			if err := srv.Wait(); err != nil {
				t.Errorf("script: %v", err)
			}
		})
	}
}

func TestStoreFlagsTranscript(t *testing.T) {
	sel := func(permanent string) imapfake.Step {
		s := "* 3 EXISTS\r\n* OK [UIDVALIDITY 9] ok\r\n"
		if permanent != "" {
			s += "* OK [PERMANENTFLAGS (" + permanent + ")] ok\r\n"
		}
		return imapfake.Send(s + "T2 OK [READ-WRITE] selected\r\n")
	}
	tests := []struct {
		name    string
		flags   map[uint32][]string
		script  []imapfake.Step
		want    StoreResult
		wantErr bool
	}{
		{
			name: "grouped by flag set, keywords kept with \\*, \\Recent dropped",
			flags: map[uint32][]string{
				1: {`\Seen`, `$Forwarded`},
				2: {`\Flagged`},
				3: {`$forwarded`, `\seen`, `\Recent`},
				4: nil,
			},
			script: []imapfake.Step{
				imapfake.Expect("T2 SELECT INBOX\r\n"), sel(`\Seen \Flagged \Deleted \Answered \Draft \*`),
				imapfake.Expect("T3 UID STORE 4 FLAGS.SILENT ()\r\n"), imapfake.Send("T3 OK done\r\n"),
				imapfake.Expect("T4 UID STORE 1,3 FLAGS.SILENT (\\Seen $Forwarded)\r\n"), imapfake.Send("T4 OK done\r\n"),
				imapfake.Expect("T5 UID STORE 2 FLAGS.SILENT (\\Flagged)\r\n"), imapfake.Send("T5 OK done\r\n"),
				imapfake.Expect("T6 EXAMINE INBOX\r\n"), imapfake.Send("T6 OK [READ-ONLY] done\r\n"),
			},
			want: StoreResult{Stored: 4, Commands: 3, Dropped: map[string]int{`\Recent`: 1}},
		},
		{
			name:  "keywords dropped without \\*",
			flags: map[uint32][]string{7: {`\Seen`, `Junk`, `bad(kw`}},
			script: []imapfake.Step{
				imapfake.Expect("T2 SELECT INBOX\r\n"), sel(`\Seen \Deleted`),
				imapfake.Expect("T3 UID STORE 7 FLAGS.SILENT (\\Seen)\r\n"), imapfake.Send("T3 OK done\r\n"),
				imapfake.Expect("T4 EXAMINE INBOX\r\n"), imapfake.Send("T4 OK [READ-ONLY] done\r\n"),
			},
			want: StoreResult{Stored: 1, Commands: 1, Dropped: map[string]int{"Junk": 1, "bad(kw": 1}},
		},
		{
			name:  "no PERMANENTFLAGS keeps every valid flag",
			flags: map[uint32][]string{5: {`Junk`}},
			script: []imapfake.Step{
				imapfake.Expect("T2 SELECT INBOX\r\n"), sel(""),
				imapfake.Expect("T3 UID STORE 5 FLAGS.SILENT (Junk)\r\n"), imapfake.Send("T3 OK done\r\n"),
				imapfake.Expect("T4 EXAMINE INBOX\r\n"), imapfake.Send("T4 OK [READ-ONLY] done\r\n"),
			},
			want: StoreResult{Stored: 1, Commands: 1},
		},
		{
			name:  "a refused command does not stop the others",
			flags: map[uint32][]string{1: {`\Seen`}, 2: {`\Answered`}},
			script: []imapfake.Step{
				imapfake.Expect("T2 SELECT INBOX\r\n"), sel(`\Seen \Answered \*`),
				imapfake.Expect("T3 UID STORE 2 FLAGS.SILENT (\\Answered)\r\n"), imapfake.Send("T3 NO [CANNOT] no\r\n"),
				imapfake.Expect("T4 UID STORE 1 FLAGS.SILENT (\\Seen)\r\n"), imapfake.Send("T4 OK done\r\n"),
				imapfake.Expect("T5 EXAMINE INBOX\r\n"), imapfake.Send("T5 OK [READ-ONLY] done\r\n"),
			},
			want:    StoreResult{Stored: 1, Failed: 1, Commands: 2},
			wantErr: true,
		},
		{
			// The server reads every command before it answers any: the
			// UID STOREs and the EXAMINE that leaves go out in one round
			// trip, and each reply counts for its own command.
			name:  "every UID STORE and the EXAMINE sent before the first reply",
			flags: map[uint32][]string{1: {`\Seen`}, 2: {`\Answered`}, 3: {`\Seen`}},
			script: []imapfake.Step{
				imapfake.Expect("T2 SELECT INBOX\r\n"), sel(`\Seen \Answered \*`),
				imapfake.Expect("T3 UID STORE 2 FLAGS.SILENT (\\Answered)\r\n"),
				imapfake.Expect("T4 UID STORE 1,3 FLAGS.SILENT (\\Seen)\r\n"),
				imapfake.Expect("T5 EXAMINE INBOX\r\n"),
				imapfake.Send("T3 NO [CANNOT] no\r\nT4 OK done\r\nT5 OK [READ-ONLY] done\r\n"),
			},
			want:    StoreResult{Stored: 2, Failed: 1, Commands: 2},
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, srv := dialFakeControl(t, append(controlLogin(""), tt.script...)...)
			got, err := d.StoreFlagsCounted(context.Background(), "INBOX", 9, tt.flags)
			if (err != nil) != tt.wantErr {
				t.Fatalf("StoreFlags error = %v, want error %v", err, tt.wantErr)
			}
			if err != nil && pipeline.ClassOf(err) != pipeline.ClassPerMessage {
				t.Errorf("StoreFlags error class = %v, want per message", pipeline.ClassOf(err))
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("StoreFlags = %+v, want %+v", got, tt.want)
			}
			_ = d.ctl.conn.Abort()
			if err := srv.Wait(); err != nil {
				t.Errorf("script: %v", err)
			}
		})
	}
}

func TestStoreFlagsUIDValidityChanged(t *testing.T) {
	d, _ := dialFakeControl(t, append(controlLogin(""),
		imapfake.Expect("T2 SELECT INBOX\r\n"),
		imapfake.Send("* OK [UIDVALIDITY 10] ok\r\nT2 OK [READ-WRITE] selected\r\n"),
		imapfake.Expect("T3 EXAMINE INBOX\r\n"), imapfake.Send("T3 OK [READ-ONLY] done\r\n"),
		imapfake.Drain(),
	)...)
	res, err := d.StoreFlagsCounted(context.Background(), "INBOX", 9, map[uint32][]string{1: {`\Seen`}})
	if !errors.Is(err, pipeline.ErrUIDValidityChanged) || res.Commands != 0 {
		t.Fatalf("StoreFlags = %+v, %v; want no command and ErrUIDValidityChanged", res, err)
	}
	if !strings.Contains(err.Error(), "INBOX") {
		t.Errorf("error %q does not name the mailbox", err)
	}
}

// TestPermanentFlagsTranscript: PermanentFlags SELECTs the mailbox, leaves
// it at once (UNSELECT where offered, else EXAMINE: GNU Mailutils loses
// what another session appends while a mailbox is selected read-write),
// and answers from memory the next time.
func TestPermanentFlagsTranscript(t *testing.T) {
	t.Run("EXAMINE without UNSELECT", func(t *testing.T) {
		d, srv := dialFakeControl(t, append(controlLogin(""),
			imapfake.Expect("T2 SELECT \"Sent\"\r\n"),
			imapfake.Send("* OK [PERMANENTFLAGS (\\Seen $Label1 \\*)] ok\r\nT2 OK [READ-WRITE] selected\r\n"),
			imapfake.Expect("T3 EXAMINE \"Sent\"\r\n"),
			imapfake.Send("* OK [PERMANENTFLAGS ()] ok\r\nT3 OK [READ-ONLY] examined\r\n"),
			imapfake.Expect("T4 SELECT \"Drafts\"\r\n"),
			imapfake.Send("* OK [UIDVALIDITY 3] ok\r\nT4 OK [READ-WRITE] selected\r\n"),
			imapfake.Expect("T5 EXAMINE \"Drafts\"\r\n"),
			imapfake.Send("T5 OK [READ-ONLY] examined\r\n"),
			imapfake.Expect("T6 NOOP\r\n"), imapfake.Send("T6 OK done\r\n"),
		)...)
		for range 2 {
			got, err := d.PermanentFlags(context.Background(), "Sent")
			if want := []string{`\Seen`, `$Label1`, `\*`}; err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("PermanentFlags(Sent) = %q, %v; want %q", got, err, want)
			}
			if got, err := d.PermanentFlags(context.Background(), "Drafts"); err != nil || got != nil {
				t.Errorf("PermanentFlags(Drafts) = %q, %v; want nil without PERMANENTFLAGS", got, err)
			}
		}
		// The second round sent nothing: the next command is the NOOP.
		if err := d.ctl.c.Noop().Wait(); err != nil {
			t.Fatal(err)
		}
		if err := srv.Wait(); err != nil {
			t.Errorf("script: %v", err)
		}
	})
	// UNSELECT goes out behind SELECT, without waiting for its reply.
	t.Run("UNSELECT, and a refused SELECT", func(t *testing.T) {
		d, srv := dialFakeControl(t, append(controlLogin("UNSELECT"),
			imapfake.Expect("T2 SELECT \"Sent\"\r\n"),
			imapfake.Send("* OK [PERMANENTFLAGS (\\Seen)] ok\r\nT2 OK [READ-WRITE] selected\r\n"),
			imapfake.Expect("T3 UNSELECT\r\n"), imapfake.Send("T3 OK done\r\n"),
			imapfake.Expect("T4 SELECT INBOX\r\nT5 UNSELECT\r\n"),
			imapfake.Send("T4 NO Error opening mailbox\r\nT5 BAD no mailbox selected\r\n"),
			imapfake.Expect("T6 NOOP\r\n"), imapfake.Send("T6 OK done\r\n"),
		)...)
		if got, err := d.PermanentFlags(context.Background(), "Sent"); err != nil || !reflect.DeepEqual(got, []string{`\Seen`}) {
			t.Errorf("PermanentFlags(Sent) = %q, %v", got, err)
		}
		for range 2 {
			if got, err := d.PermanentFlags(context.Background(), "INBOX"); err != nil || got != nil {
				t.Errorf("PermanentFlags(INBOX) = %q, %v; want nil, nil when SELECT is refused", got, err)
			}
		}
		if err := d.ctl.c.Noop().Wait(); err != nil {
			t.Fatal(err)
		}
		if err := srv.Wait(); err != nil {
			t.Errorf("script: %v", err)
		}
	})
}

// TestEnsureMailboxHugeLiteral: a LIST reply announcing a mailbox name of
// 4 GB fails EnsureMailbox at once with a fatal ErrLiteralTooLarge
// (internal/imapconn) instead of go-imap buffering it.
func TestEnsureMailboxHugeLiteral(t *testing.T) {
	d, srv := dialFakeControl(t, append(controlLogin(""),
		imapfake.Expect("T2 LIST \"\" INBOX\r\n"),
		imapfake.Send("* LIST () \"/\" {4000000000}\r\n"),
		imapfake.Drain())...)
	_, err := d.EnsureMailbox(context.Background(), "INBOX")
	if !errors.Is(err, imapconn.ErrLiteralTooLarge) || pipeline.ClassOf(err) != pipeline.ClassFatal {
		t.Fatalf("EnsureMailbox = %v (class %v), want a fatal ErrLiteralTooLarge", err, pipeline.ClassOf(err))
	}
	if err := srv.Wait(); err != nil {
		t.Errorf("script: %v", err)
	}
}
