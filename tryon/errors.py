"""Errors a user can act on, with messages safe to show in the UI and the API.

Every error carries a stable `code` (for API clients), an HTTP status (for the
REST layer) and a message template in English and Spanish, so the same error
reads right in the browser's language and in gradio_client.
"""

from __future__ import annotations

from typing import Any

MESSAGES: dict[str, dict[str, str]] = {
    "empty_file": {
        "en": "The file is empty.",
        "es": "El archivo está vacío.",
    },
    "not_an_image": {
        "en": "This file is not an image. Use a JPEG, PNG or WebP photo.",
        "es": "Este archivo no es una imagen. Usa una foto JPEG, PNG o WebP.",
    },
    "unsupported_format": {
        "en": "{format} images are not supported. Use a JPEG, PNG or WebP photo.",
        "es": "Las imágenes {format} no están soportadas. Usa una foto JPEG, PNG o WebP.",
    },
    "animated_image": {
        "en": "Animated images are not supported. Use a still JPEG, PNG or WebP photo.",
        "es": "Las imágenes animadas no están soportadas. Usa una foto fija JPEG, PNG o WebP.",
    },
    "corrupt_image": {
        "en": "The image file is truncated or corrupt. Export or download it again and retry.",
        "es": "La imagen está truncada o dañada. Vuelve a exportarla o descargarla e inténtalo de nuevo.",
    },
    "file_too_large": {
        "en": "The file is {size_mb:.1f} MB; the limit is {limit_mb:.0f} MB.",
        "es": "El archivo pesa {size_mb:.1f} MB; el límite es {limit_mb:.0f} MB.",
    },
    "too_many_pixels": {
        "en": "The image is {width}×{height} pixels ({megapixels:.0f} MP); the limit is {limit_mp:.0f} MP.",
        "es": "La imagen mide {width}×{height} píxeles ({megapixels:.0f} MP); el límite es {limit_mp:.0f} MP.",
    },
    "image_too_small": {
        "en": "The image is {width}×{height} pixels; it needs at least {min_side} px on its short side so the model can see it clearly.",
        "es": "La imagen mide {width}×{height} píxeles; necesita al menos {min_side} px en su lado corto para que el modelo la vea con claridad.",
    },
    "bad_aspect_ratio": {
        "en": "The image is {width}×{height} pixels, too long and thin. Use a photo at most {max_ratio}:1.",
        "es": "La imagen mide {width}×{height} píxeles, demasiado alargada. Usa una foto de proporción máxima {max_ratio}:1.",
    },
    "bad_base64": {
        "en": "The image text is not valid base64 or a valid data URL.",
        "es": "El texto de la imagen no es base64 válido ni una data URL válida.",
    },
    "bad_data_url_type": {
        "en": "The data URL says '{media_type}'; expected image/jpeg, image/png or image/webp.",
        "es": "La data URL indica '{media_type}'; se esperaba image/jpeg, image/png o image/webp.",
    },
    "url_refused": {
        "en": "This image URL is refused: {reason}.",
        "es": "Se rechaza esta URL de imagen: {reason}.",
    },
    "url_failed": {
        "en": "The image URL could not be downloaded ({reason}).",
        "es": "No se pudo descargar la URL de la imagen ({reason}).",
    },
    "url_not_accepted": {
        "en": "Image URLs are not accepted here; upload the image file instead.",
        "es": "Aquí no se aceptan URLs de imágenes; sube el archivo de la imagen.",
    },
    "file_not_yours": {
        "en": "A file in this request was not uploaded in this browser session, or has expired. Upload the photo again.",
        "es": "Un archivo de esta petición no se subió en esta sesión del navegador, o ha caducado. Vuelve a subir la foto.",
    },
    "unsupported_input": {
        "en": "Unsupported image input of type {kind}.",
        "es": "Entrada de imagen no soportada de tipo {kind}.",
    },
    "no_person": {
        "en": "A person photo is required.",
        "es": "Se requiere una foto de la persona.",
    },
    "no_garment": {
        "en": "At least one garment is required.",
        "es": "Se requiere al menos una prenda.",
    },
    "too_many_garments": {
        "en": "At most {limit} garments per try-on; got {count}.",
        "es": "Como máximo {limit} prendas por prueba; se recibieron {count}.",
    },
    "bad_category": {
        "en": "Unknown category {value!r}; use one of {choices}.",
        "es": "Categoría desconocida {value!r}; usa una de {choices}.",
    },
    "description_too_long": {
        "en": "The description is too long; keep it under {limit} characters.",
        "es": "La descripción es demasiado larga; usa menos de {limit} caracteres.",
    },
    "bad_order": {
        "en": "The layering order is not valid: {detail}.",
        "es": "El orden de capas no es válido: {detail}.",
    },
    "bad_variants": {
        "en": "The number of results must be a whole number from 1 to {limit}.",
        "es": "El número de resultados debe ser un entero de 1 a {limit}.",
    },
    "unknown_model": {
        "en": "Unknown model '{value}': use one of {choices}.",
        "es": "Modelo desconocido '{value}': usa uno de {choices}.",
    },
    "model_cannot": {
        "en": "{model} cannot make {option}: use {choices}, or choose another model.",
        "es": "{model} no admite {option}: usa {choices}, o elige otro modelo.",
    },
    "model_unavailable": {
        "en": "{model} runs on {vendor}, which this app is not set up for. Choose one of {choices}.",
        "es": "{model} funciona en {vendor}, que esta aplicación no tiene configurado. Elige uno de {choices}.",
    },
    "bad_option": {
        "en": "Invalid {option}: use {choices}.",
        "es": "Valor no válido para {option}: usa {choices}.",
    },
    "provider_failed": {
        "en": "The image provider failed: {reason}",
        "es": "El proveedor de imágenes falló: {reason}",
    },
    "provider_auth": {
        "en": "The image provider rejected our API key (HTTP {status}). The app's {variable} is missing, wrong or revoked.",
        "es": "El proveedor de imágenes rechazó nuestra clave de API (HTTP {status}). La {variable} de la aplicación falta, es incorrecta o fue revocada.",
    },
    "all_providers_failed": {
        "en": "Every image provider failed ({summary}). Please try again later.",
        "es": "Todos los proveedores de imágenes fallaron ({summary}). Inténtalo más tarde.",
    },
    "providers_paused": {
        "en": "Every image provider has been failing; the next attempt is allowed in {seconds:.0f} s. Please try again then.",
        "es": "Todos los proveedores de imágenes están fallando; el próximo intento será en {seconds:.0f} s. Inténtalo entonces.",
    },
    "provider_rejected_input": {
        "en": "The model rejected the request: {detail}",
        "es": "El modelo rechazó la petición: {detail}",
    },
    "provider_busy": {
        "en": "The image provider is limiting how many requests we send. Please wait a minute and try again.",
        "es": "El proveedor de imágenes está limitando las peticiones. Espera un minuto e inténtalo de nuevo.",
    },
    "provider_unavailable": {
        "en": "The image provider failed (HTTP {status}) even after retrying. Please try again later.",
        "es": "El proveedor de imágenes falló (HTTP {status}) incluso tras reintentar. Inténtalo más tarde.",
    },
    "provider_unreachable": {
        "en": "The image provider could not be reached. Please try again later.",
        "es": "No se pudo contactar con el proveedor de imágenes. Inténtalo más tarde.",
    },
    "provider_timeout": {
        "en": "The image provider did not finish within {seconds:.3g} s; the request was cancelled. Please try again.",
        "es": "El proveedor de imágenes no terminó en {seconds:.3g} s; se canceló la petición. Inténtalo de nuevo.",
    },
    "content_policy": {
        "en": "The model refused this photo or garment under its content policy. Try another photo of the person (one person, fully clothed, facing the camera) or another picture of the garment.",
        "es": "El modelo rechazó esta foto o prenda por su política de contenido. Prueba con otra foto de la persona (una sola persona, vestida, de frente) o con otra imagen de la prenda.",
    },
    "no_image_returned": {
        "en": "The model returned no image. Use a clear photo of one person and a recognisable garment on a plain background, then try again (the model may also be overloaded).",
        "es": "El modelo no devolvió ninguna imagen. Usa una foto clara de una sola persona y una prenda reconocible sobre fondo liso, e inténtalo de nuevo (el modelo también puede estar sobrecargado).",
    },
    "bad_result_image": {
        "en": "The model's image could not be downloaded ({reason}). Please try again.",
        "es": "No se pudo descargar la imagen del modelo ({reason}). Inténtalo de nuevo.",
    },
    "bad_api_key": {
        "en": "Missing or invalid API key.",
        "es": "Falta la clave de API o no es válida.",
    },
    "rate_limited": {
        "en": "Too many requests; try again in {seconds:.0f} s.",
        "es": "Demasiadas peticiones; inténtalo de nuevo en {seconds:.0f} s.",
    },
    "quota_exceeded": {
        "en": "You have reached the limit of {limit} per {window} for {who}. It resets in {wait}.{hint}",
        "es": "Has llegado al límite de {limit} por {window} para {who}. Se renueva en {wait}.{hint}",
    },
    "budget_exhausted": {
        "en": "{whose} of {limit} is spent for today. It resets in {wait} (at midnight UTC).{hint}",
        "es": "{whose} de {limit} está agotado por hoy. Se renueva en {wait} (a medianoche UTC).{hint}",
    },
    "own_key_not_allowed": {
        "en": "This app does not take visitors' own FAL keys.",
        "es": "Esta aplicación no acepta claves de FAL propias de los visitantes.",
    },
    "own_key_refused": {
        "en": "FAL refused your own key (HTTP {status}): check it, or remove it to use this app's.",
        "es": "FAL rechazó tu propia clave (HTTP {status}): revísala, o quítala para usar la de esta aplicación.",
    },
    "own_key_sync_only": {
        "en": "Your own FAL key works in Sync mode only: a queued job would have to store it. Switch to Sync, or remove the key.",
        "es": "Tu propia clave de FAL solo funciona en modo síncrono: un trabajo en cola tendría que guardarla. Cambia a síncrono o quita la clave.",
    },
    "bad_own_key": {
        "en": "That FAL key does not look right: a FAL key is an id and a secret joined by a colon (id:secret).",
        "es": "Esa clave de FAL no parece correcta: una clave de FAL es un id y un secreto unidos por dos puntos (id:secreto).",
    },
    "busy": {
        "en": "The server is busy with other try-ons; try again in a moment.",
        "es": "El servidor está ocupado con otras pruebas; inténtalo de nuevo en un momento.",
    },
    "body_too_large": {
        "en": "The request body is {size_mb:.1f} MB; the limit is {limit_mb:.0f} MB.",
        "es": "El cuerpo de la petición pesa {size_mb:.1f} MB; el límite es {limit_mb:.0f} MB.",
    },
    "bad_json": {
        "en": "The request body is not valid JSON: {reason}",
        "es": "El cuerpo de la petición no es JSON válido: {reason}",
    },
    "bad_field": {  # {expected} is a per-language phrase (rest.EXPECTED); the Spanish one carries its verb
        "en": "Field '{name}' must be {expected}.",
        "es": "El campo '{name}' {expected}.",
    },
    "job_not_found": {
        "en": "Job not found: it never existed, was mistyped, or expired.",
        "es": "Trabajo no encontrado: no existe, está mal escrito o caducó.",
    },
    "async_unavailable": {
        "en": "Async jobs are not available: this app has no job queue.",
        "es": "Los trabajos asíncronos no están disponibles: esta aplicación no tiene cola de trabajos.",
    },
    "gave_up": {
        "en": "Gave up after {attempts} attempts: the workers processing this job stopped before finishing it.",
        "es": "Se abandonó tras {attempts} intentos: los procesos que lo trataban se detuvieron antes de terminar.",
    },
    "internal_error_id": {
        "en": "Something went wrong on our side (request {request_id}). Please try again.",
        "es": "Algo falló por nuestra parte (petición {request_id}). Inténtalo de nuevo.",
    },
    "internal_error": {
        "en": "Something went wrong on our side while processing this job.",
        "es": "Algo falló por nuestra parte al procesar este trabajo.",
    },
    "batch_not_found": {
        "en": "Batch not found: it never existed, was mistyped, or expired.",
        "es": "Lote no encontrado: no existe, está mal escrito o caducó.",
    },
    "batch_no_person": {
        "en": "Add at least one person photo to the catalogue run.",
        "es": "Añade al menos una foto de persona al catálogo.",
    },
    "batch_no_outfit": {
        "en": "Add at least one garment (an outfit) to the catalogue run.",
        "es": "Añade al menos una prenda (un conjunto) al catálogo.",
    },
    "batch_too_many_persons": {
        "en": "{count} person photos: a catalogue run takes at most {limit}.",
        "es": "{count} fotos de persona: un catálogo admite como máximo {limit}.",
    },
    "batch_too_many_outfits": {
        "en": "{count} outfits: a catalogue run takes at most {limit}.",
        "es": "{count} conjuntos: un catálogo admite como máximo {limit}.",
    },
    "batch_outfit_garments": {
        "en": "Outfit {outfit} has {count} garments: each outfit takes 1 to {limit}.",
        "es": "El conjunto {outfit} tiene {count} prendas: cada conjunto admite de 1 a {limit}.",
    },
    "batch_bad_outfits": {
        "en": "Outfits must be garment numbers grouped with +, separated by commas (e.g. 1+2, 3); got \"{text}\".",
        "es": "Los conjuntos son números de prenda unidos con +, separados por comas (p. ej. 1+2, 3); se recibió \"{text}\".",
    },
    "batch_outfit_garment_missing": {
        "en": "An outfit names garment {number}, but there are {garments} garment photos.",
        "es": "Un conjunto nombra la prenda {number}, pero hay {garments} fotos de prendas.",
    },
    "batch_too_large": {
        "en": "{persons} persons × {outfits} outfits is {looks} looks; this app runs at most {limit} in one batch. Split it into smaller batches.",
        "es": "{persons} personas × {outfits} conjuntos son {looks} looks; esta aplicación hace como máximo {limit} por lote. Divídelo en lotes más pequeños.",
    },
    "unknown_reference": {
        "en": "Unknown image reference; upload the image again.",
        "es": "Referencia de imagen desconocida; vuelve a subir la imagen.",
    },
}

FIELD_NAMES: dict[str, dict[str, str]] = {
    "person": {"en": "Person photo", "es": "Foto de la persona"},
    "persons": {"en": "Person {n}", "es": "Persona {n}"},  # a batch's
    "outfit": {"en": "Outfit {n}", "es": "Conjunto {n}"},
    "garment": {"en": "Garment {n}", "es": "Prenda {n}"},
    "image": {"en": "Image", "es": "Imagen"},
}

LANGUAGES = ("en", "es")


def pick_language(accept_language: str | None) -> str:
    """The first supported language in an Accept-Language header ("es-ES,es;q=0.9")."""
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in LANGUAGES:
            return tag
    return "en"


def field_label(field: str, lang: str = "en") -> str:
    """'garment_2' -> 'Garment 2' / 'Prenda 2'; 'person' -> 'Person photo'."""
    lang = lang if lang in LANGUAGES else "en"
    if "." in field:  # "outfit_3.garment_2": a batch's outfit, then its garment
        return ", ".join(field_label(part, lang) for part in field.split("."))
    base, _, number = field.partition("_")
    names = FIELD_NAMES.get(base)
    if names is None:
        return field
    return names[lang].format(n=number)


class TryOnError(Exception):
    """An error whose message is meant for the user: specific, actionable, no secrets."""

    http_status = 400

    def __init__(self, code: str, *, field: str | None = None, http_status: int | None = None, **params: Any):
        self.code = code
        self.field = field
        self.params = params
        if http_status is not None:
            self.http_status = http_status
        super().__init__(self.message("en"))

    def message(self, lang: str = "en") -> str:
        lang = lang if lang in LANGUAGES else "en"
        # A parameter given per language ({"en": ..., "es": ...}) is read in the message's language.
        params = {k: v.get(lang, v.get("en")) if isinstance(v, dict) else v for k, v in self.params.items()}
        text = MESSAGES[self.code][lang].format(**params)
        return f"{field_label(self.field, lang)}: {text}" if self.field else text

    def for_field(self, field: str) -> "TryOnError":
        """The same error, now naming which input it is about."""
        self.field = field
        self.args = (self.message("en"),)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "error": self.message("en"), "field": self.field}


class InvalidImage(TryOnError):
    """The bytes given are not a usable photo."""


class ImageTooLarge(InvalidImage):
    http_status = 413


class InvalidRequest(TryOnError):
    """The request as a whole is malformed (garment count, missing person, ...)."""


class ProviderError(TryOnError):
    """The image provider failed; the status tells the REST layer 502 from 504."""

    http_status = 502


class ConfigError(ValueError):
    """A setting from the environment is invalid; raised at start-up, names the variable."""
