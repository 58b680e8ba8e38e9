"""The column sets of the reference's templates, exactly as it prints them.

One tuple per file kind; the header row of a template, an export and an imported file.
Several values in one cell are separated by ``;``.
"""

from __future__ import annotations

RESIDENTS: tuple[str, ...] = (
    "Building",
    "Accessible Floors",
    "Apt",
    "Apt Name",
    "Account Type",
    "First Name",
    "Last Name",
    "Email",
    "MobileNumber",
    "TelephoneCallingCode",
    "1stPhone",
    "2ndPhone",
    "3rdPhone",
    "RF Card",
    "PIN",
    "License Plate",
    "UHF Card",
    "Access Group ID",
    "Remark",
    "UID",
)
CARDS: tuple[str, ...] = ("Building", "Apt", "User", "RF Card", "PIN")
STAFF: tuple[str, ...] = ("Staff Name", "RF Card", "Access Group ID")
APARTMENTS: tuple[str, ...] = (
    "Building",
    "Apartment",
    "APT Name",
    "Residents",
    "Devices",
    "Enabled Access Methods",
)

#: What can be imported, what exported, what has a template (INTERFACES.md).
IMPORT_KINDS: dict[str, tuple[str, ...]] = {"residents": RESIDENTS, "cards": CARDS, "staff": STAFF}
EXPORT_KINDS: dict[str, tuple[str, ...]] = {
    "residents": RESIDENTS,
    "apartments": APARTMENTS,
    "cards": CARDS,
    "staff": STAFF,
}
TEMPLATE_KINDS = IMPORT_KINDS

#: A held credential in an export: the site keeps only HMACs, so a value cannot be shown.
#: Re-imported, a cell of masks keeps the person's credentials of that kind.
MASK = "****"
SEPARATOR = ";"

#: Credential columns -> credential kind, and how many values one person may have there.
CREDENTIAL_COLUMNS: dict[str, tuple[str, int]] = {
    "RF Card": ("rf_card", 10),
    "PIN": ("pin", 1),
    "License Plate": ("license_plate", 5),
    "UHF Card": ("uhf_card", 5),
}

#: Display names of credential kinds ("Enabled Access Methods").
KIND_NAMES: dict[str, str] = {
    "pin": "PIN",
    "rf_card": "RF Card",
    "uhf_card": "UHF Card",
    "license_plate": "License Plate",
    "face": "Face",
    "fingerprint": "Fingerprint",
    "id_card_qr": "ID Card",
    "qr": "QR Code",
    "nfc": "NFC",
    "ble": "Bluetooth",
}
