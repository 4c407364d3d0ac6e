package mapping

import "strings"

// Special-use mailbox attributes (RFC 6154 §2, RFC 8457 for \Important).
const (
	UseAll       = `\All`
	UseArchive   = `\Archive`
	UseDrafts    = `\Drafts`
	UseFlagged   = `\Flagged`
	UseJunk      = `\Junk`
	UseSent      = `\Sent`
	UseTrash     = `\Trash`
	UseImportant = `\Important`
)

// specialUses maps the lower-cased attributes to their canonical spelling.
var specialUses = map[string]string{
	`\all`:       UseAll,
	`\archive`:   UseArchive,
	`\drafts`:    UseDrafts,
	`\flagged`:   UseFlagged,
	`\junk`:      UseJunk,
	`\sent`:      UseSent,
	`\trash`:     UseTrash,
	`\important`: UseImportant,
}

// IsVirtual reports whether use names a folder that holds no messages of its
// own but shows messages stored in other folders: \All (Gmail's "All Mail"),
// \Flagged (Gmail's "Starred") and \Important. Copying such a folder copies
// every message a second time, so FolderMap leaves them out by default.
func IsVirtual(use string) bool {
	return use == UseAll || use == UseFlagged || use == UseImportant
}

// wellKnownNames maps the lower-cased names mail clients and servers give
// special folders, in the languages seen most often, to their use. The
// names are compared after a leading "INBOX" and one separator are removed
// (Courier and Cyrus keep every folder under "INBOX.").
var wellKnownNames = func() map[string]string {
	byUse := map[string][]string{
		UseSent: {
			"sent", "sent items", "sent messages", "sent mail", "sent-mail", "sent e-mail",
			"gesendet", "gesendete elemente", "gesendete objekte", "gesendete nachrichten",
			"envoyés", "envoyes", "éléments envoyés", "elements envoyes", "messages envoyés",
			"enviados", "elementos enviados", "mensajes enviados", "itens enviados",
			"posta inviata", "inviati", "elementi inviati",
			"verzonden", "verzonden items", "verzonden berichten",
			"skickat", "skickade", "skickade objekt", "sendt", "sendte elementer", "sendt post",
			"lähetetyt", "wysłane", "elementy wysłane", "odeslané", "odeslaná pošta",
			"отправленные", "送信済み", "已发送",
			"[gmail]/sent mail", "[google mail]/sent mail", "[gmail]/gesendet", "[google mail]/gesendet",
			"[gmail]/messages envoyés", "[gmail]/enviados",
		},
		UseDrafts: {
			"drafts", "draft", "entwürfe", "entwurf", "brouillons", "borradores", "rascunhos",
			"bozze", "concepten", "utkast", "kladder", "luonnokset", "kopie robocze", "koncepty",
			"черновики", "下書き", "草稿",
			"[gmail]/drafts", "[google mail]/drafts", "[gmail]/entwürfe", "[google mail]/entwürfe",
			"[gmail]/brouillons", "[gmail]/borradores",
		},
		UseTrash: {
			"trash", "deleted items", "deleted messages", "deleted", "bin",
			"papierkorb", "gelöschte elemente", "gelöschte objekte", "gelöschte nachrichten",
			"corbeille", "éléments supprimés", "elements supprimes", "messages supprimés",
			"papelera", "elementos eliminados", "lixeira", "lixo", "itens excluídos",
			"cestino", "posta eliminata", "elementi eliminati",
			"prullenbak", "verwijderde items", "verwijderde berichten",
			"papperskorgen", "borttagna objekt", "papirkurv", "slettede elementer", "slettet",
			"roskakori", "poistetut", "kosz", "elementy usunięte", "koš", "odstraněná pošta",
			"корзина", "удаленные", "удалённые", "ゴミ箱", "已删除",
			"[gmail]/trash", "[gmail]/bin", "[google mail]/trash", "[google mail]/bin",
			"[gmail]/papierkorb", "[google mail]/papierkorb", "[gmail]/corbeille", "[gmail]/papelera",
		},
		UseJunk: {
			"junk", "spam", "junk e-mail", "junk email", "junk mail", "junk-e-mail", "bulk mail", "bulk",
			"spamverdacht", "unerwünscht", "junk-e-mail-ordner",
			"courrier indésirable", "courrier indesirable", "indésirables", "pourriel",
			"correo no deseado", "lixo eletrônico", "posta indesiderata", "ongewenste e-mail",
			"ongewenst", "skräppost", "uønsket e-post", "roskaposti", "wiadomości-śmieci",
			"nevyžádaná pošta", "спам", "нежелательная почта", "迷惑メール", "垃圾邮件",
			"[gmail]/spam", "[google mail]/spam",
		},
		UseArchive: {
			"archive", "archives", "archiv", "archivio", "archief", "archivo", "arquivo",
			"arkiv", "arkisto", "archiwum", "архив",
		},
		UseAll: {
			"[gmail]/all mail", "[google mail]/all mail", "[gmail]/alle nachrichten",
			"[google mail]/alle nachrichten", "[gmail]/tous les messages", "[gmail]/todos",
		},
		UseFlagged: {
			"[gmail]/starred", "[google mail]/starred", "[gmail]/markiert", "[google mail]/markiert",
			"[gmail]/suivis", "[gmail]/destacados",
		},
		UseImportant: {
			"[gmail]/important", "[google mail]/important", "[gmail]/wichtig", "[google mail]/wichtig",
		},
	}
	m := map[string]string{}
	for use, names := range byUse {
		for _, n := range names {
			m[n] = use
		}
	}
	return m
}()

// defaultNames is the destination name FolderMap gives a special folder when
// the destination has none with the attribute or a well-known name.
var defaultNames = map[string]string{
	UseSent:    "Sent",
	UseDrafts:  "Drafts",
	UseTrash:   "Trash",
	UseJunk:    "Junk",
	UseArchive: "Archive",
}

// SpecialUseOf returns the special use of a folder ("\Sent", "\Drafts",
// "\Trash", "\Junk", "\Archive", "\All", "\Flagged", "\Important") or "".
// An RFC 6154 attribute in attrs decides (any case; the first one listed
// wins). Without one, the name decides: a well-known name in a common
// language ("Sent Items", "Gesendete Elemente", "Éléments envoyés",
// "[Gmail]/Sent Mail", "Papierkorb", "Junk E-mail", …), compared without
// case, either as the whole name or after a leading "INBOX" and "." or "/"
// ("INBOX.Sent"). A well-known name deeper in the hierarchy
// ("Projects/Sent") is an ordinary folder.
func SpecialUseOf(name string, attrs []string) string {
	if use := specialUseAttr(attrs); use != "" {
		return use
	}
	return specialUseByName(name)
}

// specialUseAttr returns the first special-use attribute in attrs, or "".
func specialUseAttr(attrs []string) string {
	for _, a := range attrs {
		if use, ok := specialUses[strings.ToLower(a)]; ok {
			return use
		}
	}
	return ""
}

// specialUseByName looks name up among the well-known names.
func specialUseByName(name string) string {
	n := strings.ToLower(strings.TrimSpace(name))
	if use, ok := wellKnownNames[n]; ok {
		return use
	}
	if len(n) > len("inbox.") && strings.HasPrefix(n, "inbox") && (n[5] == '.' || n[5] == '/') {
		if use, ok := wellKnownNames[n[len("inbox")+1:]]; ok {
			return use
		}
	}
	return ""
}

// HasSpecialUse reports whether any folder carries an RFC 6154 attribute:
// then the server marks its special folders, and FolderMap should not guess
// from names (FolderOptions.SourceMarksSpecialUse).
func HasSpecialUse(folders []Folder) bool {
	for _, f := range folders {
		if specialUseAttr(f.Attrs) != "" {
			return true
		}
	}
	return false
}
