"""Cue words, per language (en, es, de, fr, pt, it, nl), that make a nearby value personal data.

Each list is a regular-expression alternation, matched case-insensitively on word boundaries. They were
written for ReplyDesk from the formats' own definitions:

* payment cards: ISO/IEC 7812-1 (13-19 digit PAN, Luhn check digit), ISO/IEC 7813 (expiry printed MM/YY);
  the card verification value is the 3-4 digit code of PCI DSS v4.0's glossary ("card verification code or
  value"; CVV2, CVC2, CID; "cryptogramme visuel" in French banking usage);
* IBAN: ISO 13616-1 (country code, 2 check digits, up to 30 alphanumerics, printed in groups of four);
* postcodes: the Universal Postal Union's "Postal addressing systems" country sheets (US ZIP 5 or 5+4, UK
  outward + inward code, DE / FR / ES / IT 5 digits, PT 4-3 digits, BR CEP 5-3 digits, NL 4 digits + 2
  letters);
* national identifiers: the number formats documented by python-stdnum (es.dni, es.nie, pt.nif,
  it.codicefiscale, fr.nir, de.idnr, nl.bsn, us.ssn, br.cpf), which also validates them;
* street words: the street types of each country's addressing rules in the same UPU sheets (Calle / Avenida,
  Straße / -str. / Weg, rue / avenue, Rua / Avenida, Via / Piazza, -straat / -gracht / -laan, Street / Road).
"""

from __future__ import annotations

import re


def _cue(words: str, *, boundary: bool = True) -> re.Pattern[str]:
    body = f"(?:{words})"
    return re.compile(rf"(?<![^\W_]){body}(?![^\W_])" if boundary else body, re.IGNORECASE)


CARD_WORDS = (
    r"card|cards|credit card|debit card|visa|mastercard|master card|amex|american express|maestro|"
    r"tarjeta|tarjetas|karte|kreditkarte|debitkarte|bankkarte|ec-karte|girocard|kartennummer|"
    r"carte|carte bancaire|cb|cartão|cartao|carta|carta di credito|bancomat|kaart|creditcard|pinpas|bankpas|"
    r"بطاقة"
)
CARD_CUE = _cue(CARD_WORDS)

# digits after these are not a card even when they pass Luhn (parcel tracking, barcodes, device serials)
NOT_CARD_CUE = _cue(
    r"tracking|track|seguimiento|rastreo|sendungsnummer|sendung|suivi|rastreio|rastreamento|tracciamento|"
    r"ean|gtin|barcode|código de barras|codigo de barras|strichcode|code-barres|codice a barre|streepjescode|"
    r"imei|serial|serie|seriennummer|série|seriale|serienummer|sku|artikel|artikelnummer|article|artículo|"
    r"referencia|ref|modelo|modell|model|modèle|modello"
)

SECURITY_CODE_CUE = _cue(
    r"cvv2?|cvc2?|cid|csc|security code|card verification(?: code| value)?|"
    r"código de seguridad|codigo de seguridad|código cvv|"
    r"prüfnummer|kartenprüfnummer|sicherheitscode|prüfziffer|"
    r"cryptogramme(?: visuel)?|code de sécurité|code de securite|"
    r"código de segurança|codigo de seguranca|"
    r"codice di sicurezza|codice cvv|beveiligingscode|verificatiecode"
)

EXPIRY_CUE = _cue(
    r"exp\.?|expiry|expiry date|expires|expiration|valid thru|valid through|valid until|good thru|"
    r"caduca|caducidad|fecha de caducidad|vence|vencimiento|válida hasta|valida hasta|"
    r"gültig bis|gueltig bis|ablaufdatum|ablauf|läuft ab|"
    r"expire|date d'expiration|date d’expiration|valable jusqu'au|fin de validité|"
    r"validade|válido até|valido ate|vencimento|"
    r"scadenza|scade|data di scadenza|valida fino|"
    r"vervaldatum|geldig tot|verloopt"
)

IBAN_CUE = _cue(
    r"iban|account|acct|bank account|account number|cuenta|número de cuenta|konto|kontonummer|bankverbindung|"
    r"compte|rib|"
    r"conta|nib|conto|conto corrente|rekening|rekeningnummer"
)

PHONE_CUE = _cue(
    r"phone|telephone|tel\.?|mobile|cell|call me|ring me|text me|whatsapp|contact number|"
    r"teléfono|telefono|móvil|movil|celular|llámame|llamadme|llámenme|llamar|márquenme|"
    r"telefon|telefonnummer|handy|handynummer|mobilnummer|rufnummer|anrufen|"
    r"téléphone|portable|tél\.?|appelez-moi|appelle-moi|rappeler|"
    r"telemóvel|telemovel|telefone|ligue|liga|ligar|contacto|"
    r"cellulare|telefonino|chiamare|chiamatemi|chiamami|"
    r"telefoonnummer|mobiel|bel me|bellen"
)

BIRTH_CUE = _cue(
    r"born|born on|date of birth|birth date|birthdate|dob|d\.o\.b\.?|"
    r"fecha de nacimiento|f\. de nacimiento|nacimiento|nací el|naci el|nacido el|nacida el|"
    r"geboren|geboren am|geb\.|geburtsdatum|geburtstag|"
    r"né le|née le|ne le|date de naissance|naissance|"
    r"data de nascimento|nascimento|nasci em|nascido em|nascida em|"
    r"nato il|nata il|nato|nata|data di nascita|"
    r"geboortedatum|geboren op"
)

PASSWORD_CUE = _cue(
    r"password|passwd|pwd|passcode|pass code|pin|pin code|pin number|one-time code|verification code|otp|"
    r"contraseña|contrasena|clave|código de verificación|codigo de verificacion|"
    r"passwort|kennwort|pin-code|geheimzahl|bestätigungscode|"
    r"mot de passe|mdp|code pin|code secret|code de vérification|"
    r"senha|palavra-passe|código de verificação|"
    r"codice pin|codice di verifica|parola d'ordine|"
    r"wachtwoord|pincode|verificatiecode"
)
# cues of numeric one-time codes and PINs: the digits may come a few words later ("the verification code you
# sent was 884213")
CODE_CUE = _cue(
    r"pin|pin code|pincode|one-time code|verification code|security pin|otp|"
    r"código de verificación|codigo de verificacion|bestätigungscode|code de vérification|"
    r"código de verificação|codice di verifica|verificatiecode|geheimzahl"
)
# between the cue and the secret: ":" / "=" or a copula ("is", "es", "ist", ...)
PASSWORD_LINK = (
    r"\s*[:=]\s*|\s+(?:is|was|es|era|ist|lautet|war|est|était|é|è)(?![^\W_])\s*:?\s*|\s+(?=\d{4,8}\b)"
)

NATIONAL_ID_CUE = _cue(
    r"dni|nie|nif|nif/nie|documento de identidad|número de identificación|pasaporte|"
    r"ssn|social security(?: number)?|passport(?: number| no\.?)?|id number|id card|identity card|"
    r"national insurance(?: number)?|ni number|nino|"
    r"personalausweis(?:nummer)?|ausweisnummer|ausweis-nr\.?|ausweis|reisepass(?:nummer)?|steuer-id|"
    r"steuer-identifikationsnummer|steueridentifikationsnummer|identifikationsnummer|idnr|steuernummer|"
    r"numéro de sécurité sociale|sécurité sociale|securite sociale|nir|carte d'identité|carte d’identité|"
    r"passeport|cni|"
    r"contribuinte|número de contribuinte|cartão de cidadão|cc|cpf|rg|passaporte|bilhete de identidade|"
    r"codice fiscale|carta d'identità|carta di identità|passaporto|"
    r"bsn|burgerservicenummer|paspoort|identiteitskaart|id-kaart"
)

POSTCODE_CUE = _cue(
    r"zip|zip code|zipcode|postcode|post code|postal code|c\.p\.|cp|código postal|codigo postal|"
    r"plz|postleitzahl|code postal|cep|cap|código-postal|postcode"
)

ORDER_KEYWORDS = (
    r"order|orders|pedido|bestellung|bestellnummer|auftragsnummer|commande|encomenda|ordine|"
    r"bestelling|ordernummer|zam[oó]wienie|sipari[sş]"
)
ORDER_CUE = _cue(ORDER_KEYWORDS)
# codes after these are product codes, not orders
PRODUCT_CODE_CUE = _cue(
    r"sku|ean|model|modelo|modell|modèle|modello|article|artículo|articulo|artikel|artigo|articolo|"
    r"product code|código del producto|código de producto|produktcode|code produit|código do produto|"
    r"codice prodotto|productcode|ref|referencia|référence|riferimento|referentie|iso|version|versión"
)

# A name a customer gives: "my name is ...", and the sign-off before a name at the end of a line.
NAME_INTRO = (
    r"my name is|my name's|me llamo|mi nombre es|ich heiße|ich heisse|mein name ist|je m'appelle|"
    r"je m’appelle|mon nom est|me chamo|chamo-me|o meu nome é|meu nome é|mi chiamo|il mio nome è|"
    r"mijn naam is|ik heet"
)
SIGN_OFF = (
    r"regards|kind regards|best regards|thanks|thank you|cheers|best|"
    r"saludos|un saludo|gracias|atentamente|"
    r"grüße|gruß|viele grüße|liebe grüße|mit freundlichen grüßen|danke|"
    r"cordialement|merci|bien à vous|"
    r"obrigado|obrigada|cumprimentos|atenciosamente|abraço|"
    r"grazie|saluti|cordiali saluti|distinti saluti|"
    r"groeten|met vriendelijke groet|bedankt"
)
# particles inside a person's or a street's name
NAME_PARTICLES = frozenset(
    "de del la las los da do dos das di della dei degli von vom van der den ter het le du des d'".split()
)
# A street name token never is one of these (they end a street name written in running text).
STREET_STOP = frozenset(
    """and or but please thanks the a an to for from with at on in is are was my your our this that it of
    y o e u pero por para con en es está esta mi mis su sus el un una que no
    und oder aber bitte mit für in im ist bei nach an am zur zum mein meine
    et ou mais pour avec est mon ma mes sur chez au aux merci svp dans
    ou mas com para em no na é meu minha obrigado obrigada
    o ma per con in è mio mia grazie al
    en of maar voor met op is mijn bij naar""".split()
)
