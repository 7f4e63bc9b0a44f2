"""The UI's words in English and Spanish.

Static labels go through gradio's I18n (the browser's language picks them);
text the handlers build at run time (status line, timing table) uses `say()`
with the language taken from the request's Accept-Language header.
"""

from __future__ import annotations

import gradio as gr

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "title": "# tryon: virtual try-on",
        "intro": "Upload a photo of a person and up to four garments, then press **Try on**. Clear, well-lit photos on a plain background work best.",
        "person": "Person photo",
        "garment_1": "Garment 1",
        "garment_2": "Garment 2",
        "garment_3": "Garment 3",
        "garment_4": "Garment 4",
        "more_garments": "More garments (up to 4)",
        "mode": "Mode",
        "mode_info_async_soon": "Sync applies garments one after another. Async (a background job you can poll) is not available yet.",
        "try_on": "Try on",
        "result": "Result",
        "before_after": "Before / after",
        "timings": "Where the time went",
        "timing_record": "Timing record (JSON)",
        "examples": "Examples: click one to fill the slots",
        "preview_banner": "**Offline preview mode.** No FAL key is set, so results are a quick CPU approximation (garments laid over the torso), **not** the AI model. Set `FAL_KEY` to use the real model.",
        "status_idle": "Ready.",
        "status_done": "Done in {seconds:.2f} s with {provider}.",
        "status_done_preview": "Offline preview (not the AI result), made in {seconds:.2f} s.",
        "applying": "Applying garment {step} of {total}",
        "step": "Step",
        "ms": "ms",
        "detail": "Detail",
        "row_inputs": "Prepare and upload inputs (in parallel)",
        "row_upload": "  {field}",
        "row_call": "Provider call {n}",
        "row_download": "Fetch result",
        "row_provider_total": "Provider total",
        "row_overhead": "Backend overhead",
        "row_total": "Total",
        "detail_upload": "{size}, {kb:.0f} KB · prepare {preprocess_ms:.0f} ms ({intake}) · upload {upload_ms:.0f} ms ({upload})",
        "how_decoded": "decoded",
        "how_cached": "cache hit",
        "how_uploaded": "uploaded",
        "how_shared": "joined the upload started on drop",
        "detail_cold": "first request of this process",
        "footer_local": "Provider: offline preview (CPU approximation, not the AI model).",
        "footer_fal": "Provider: FAL (the AI model).",
        "internal_error": "Something went wrong on our side (request {request_id}). Please try again.",
    },
    "es": {
        "title": "# tryon: probador virtual",
        "intro": "Sube una foto de una persona y hasta cuatro prendas, y pulsa **Probar**. Funcionan mejor las fotos nítidas, bien iluminadas y con fondo liso.",
        "person": "Foto de la persona",
        "garment_1": "Prenda 1",
        "garment_2": "Prenda 2",
        "garment_3": "Prenda 3",
        "garment_4": "Prenda 4",
        "more_garments": "Más prendas (hasta 4)",
        "mode": "Modo",
        "mode_info_async_soon": "Síncrono aplica las prendas una tras otra. Asíncrono (un trabajo en segundo plano que se consulta) aún no está disponible.",
        "try_on": "Probar",
        "result": "Resultado",
        "before_after": "Antes / después",
        "timings": "En qué se fue el tiempo",
        "timing_record": "Registro de tiempos (JSON)",
        "examples": "Ejemplos: haz clic en uno para rellenar las casillas",
        "preview_banner": "**Modo de vista previa sin conexión.** No hay clave de FAL, así que los resultados son una aproximación rápida en CPU (prendas superpuestas al torso), **no** el modelo de IA. Define `FAL_KEY` para usar el modelo real.",
        "status_idle": "Listo.",
        "status_done": "Hecho en {seconds:.2f} s con {provider}.",
        "status_done_preview": "Vista previa sin conexión (no es el resultado de la IA), hecha en {seconds:.2f} s.",
        "applying": "Aplicando la prenda {step} de {total}",
        "step": "Paso",
        "ms": "ms",
        "detail": "Detalle",
        "row_inputs": "Preparar y subir las imágenes (en paralelo)",
        "row_upload": "  {field}",
        "row_call": "Llamada al proveedor {n}",
        "row_download": "Obtener el resultado",
        "row_provider_total": "Total del proveedor",
        "row_overhead": "Sobrecarga del backend",
        "row_total": "Total",
        "detail_upload": "{size}, {kb:.0f} KB · preparar {preprocess_ms:.0f} ms ({intake}) · subir {upload_ms:.0f} ms ({upload})",
        "how_decoded": "decodificada",
        "how_cached": "en caché",
        "how_uploaded": "subida",
        "how_shared": "se unió a la subida iniciada al soltarla",
        "detail_cold": "primera petición de este proceso",
        "footer_local": "Proveedor: vista previa sin conexión (aproximación en CPU, no el modelo de IA).",
        "footer_fal": "Proveedor: FAL (el modelo de IA).",
        "internal_error": "Algo falló por nuestra parte (petición {request_id}). Inténtalo de nuevo.",
    },
}

I18N = gr.I18n(**STRINGS)


def say(key: str, lang: str = "en", **params) -> str:
    table = STRINGS.get(lang, STRINGS["en"])
    return table.get(key, STRINGS["en"][key]).format(**params)
