"""Request and response bodies of the HTTP API (pydantic; they also make the OpenAPI document).

Request limits (texts per request, characters per text) are part of the schema as ``maxItems`` /
``maxLength`` so clients and fuzzers can see them, but they are enforced by the app, which answers
413 (not 422) when a limit is exceeded — the request is well formed, just too big.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    create_model,
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PredictParameters(_Strict):
    """Optional inference parameters (Hugging Face Inference API style)."""

    top_k: StrictInt | None = Field(
        None,
        ge=1,
        description="classification: return the k best labels as a list; "
        "multi-label: at most k scores; ignored for NER",
    )


def predict_request_model(max_inputs: int, max_chars: int) -> type[BaseModel]:
    """The ``POST /v1/predict`` body with this server's limits written into its schema."""
    text = Annotated[StrictStr, Field(min_length=1, json_schema_extra={"maxLength": max_chars, "pattern": r"\S"})]
    texts = Annotated[list[text], Field(min_length=1, json_schema_extra={"maxItems": max_inputs})]
    return create_model(
        "PredictRequest",
        __base__=_Strict,
        __doc__=f"A text or a list of up to {max_inputs} texts of up to {max_chars} characters.",
        inputs=(text | texts, Field(..., description="a text or a non-empty list of texts")),
        parameters=(PredictParameters, Field(default_factory=PredictParameters)),
    )


class EntityCorrection(_Strict):
    start: StrictInt = Field(ge=0, description="character offset of the entity's first character")
    end: StrictInt = Field(ge=1, description="character offset just after the entity")
    label: StrictStr = Field(min_length=1, max_length=200, description="entity type, e.g. PER")


class FeedbackRequest(_Strict):
    """A correction: ``prediction_id`` (from a /v1/predict response) and/or ``text``, plus exactly one
    of ``label`` (classification), ``labels`` (multi-label) or ``entities`` (NER)."""

    prediction_id: StrictStr | None = Field(None, min_length=1, max_length=64, pattern=r"^[0-9a-f]+$")
    text: StrictStr | None = Field(None, min_length=1, pattern=r"\S")
    label: StrictStr | None = Field(None, min_length=1, max_length=200)
    labels: list[Annotated[StrictStr, Field(min_length=1, max_length=200)]] | None = Field(None, max_length=1000)
    entities: list[EntityCorrection] | None = Field(None, max_length=1000)
    source: StrictStr = Field("api", min_length=1, max_length=100, description="who corrected it, e.g. agent:42")

    def correction(self) -> Any:
        given = [v for v in (self.label, self.labels, self.entities) if v is not None]
        if len(given) != 1:
            from ..errors import UserError

            raise UserError(
                "send exactly one of label, labels or entities",
                hint="label: classification; labels: multi-label; entities: NER",
            )
        if self.entities is not None:
            return [e.model_dump() for e in self.entities]
        return given[0]


class FeedbackResponse(BaseModel):
    id: int = Field(description="the stored feedback row")
    prediction_id: str | None = None
    model_version: str = Field(description="the model version whose prediction is corrected")
    label: Any = Field(description="the correction as stored")


class LabelScore(BaseModel):
    label: str
    score: float


class TrustedLabel(BaseModel):
    """Classification with ``abstain:`` settings saved in the model (see README § Calibration)."""

    label: str | None = Field(description="the top label; null when the model abstained")
    score: float = Field(description="the top label's calibrated probability")
    abstained: bool | None = Field(None, description="with an abstention threshold: true when score is below it")
    prediction_set: list[str] | None = Field(
        None, description="with conformal sets: the labels that hold the true one with probability >= 1 - alpha"
    )


class MultiLabelPrediction(BaseModel):
    labels: list[str] = Field(description="labels whose score passed the tuned threshold")
    scores: list[LabelScore]


class Entity(BaseModel):
    entity_group: str
    word: str = Field(description="input[start:end]")
    start: int = Field(description="character offset in the input text")
    end: int
    score: float


class GeneratedText(BaseModel):
    generated_text: str = Field(description="causal_lm: the model's answer to the text as a user message")


Prediction = LabelScore | TrustedLabel | list[LabelScore] | MultiLabelPrediction | list[Entity] | GeneratedText


class PredictResponse(BaseModel):
    model_version: str = Field(description="first 12 hex of sha256 over fieldtune.json's `created` and `data`")
    predictions: list[Prediction] = Field(description="one per input, in input order")
    ids: list[str] = Field(description="a prediction id (uuid4 hex) per input, for logs and feedback")


class ErrorDetail(BaseModel):
    type: str = Field(description="machine-readable kind, e.g. payload_too_large, invalid_request")
    message: str
    hint: str | None = Field(None, description="how to fix the request")


class ErrorResponse(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "loading", "failed"]
    model_version: str
    error: str | None = None


class Limits(BaseModel):
    max_inputs: int
    max_chars: int
    max_body_bytes: int
    max_batch: int
    max_wait_ms: float
    batching: bool
    inference_threads: int


class Metadata(BaseModel):
    task: str
    labels: list[str]
    model_version: str
    base_model: Any = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    created: str | None = None
    fieldtune_version: str | None = None
    max_length: int | None = None
    backend: str | None = None
    causal_lm: bool = False
    limits: Limits


class ChatMessage(_Strict):
    role: Literal["system", "user", "assistant"]
    content: StrictStr


class ChatRequest(_Strict):
    """OpenAI-style chat completion request (served for causal LM artifacts only)."""

    model: StrictStr | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: StrictInt | None = Field(None, ge=1)
    temperature: StrictFloat | StrictInt | None = Field(None, ge=0, le=2)
    top_p: StrictFloat | StrictInt | None = Field(None, gt=0, le=1)
    stream: StrictBool = False


class ChatChoice(BaseModel):
    index: int
    message: ChatMessage
    finish_reason: str | None = None


class ChatResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: dict[str, int] = Field(default_factory=dict)


def explain_request_model(max_chars: int) -> type[BaseModel]:
    """The ``POST /v1/explain`` body with this server's text limit written into its schema."""
    text = Annotated[StrictStr, Field(min_length=1, json_schema_extra={"maxLength": max_chars, "pattern": r"\S"})]
    return create_model(
        "ExplainRequest",
        __base__=_Strict,
        __doc__=f"One text of up to {max_chars} characters to explain (as `fieldtune explain`).",
        inputs=(text, Field(..., description="the text; attribution offsets index it")),
        label=(StrictStr | None, Field(None, min_length=1, description="explain this label (NER: entity type)")),
        method=(Literal["auto", "ig", "occlusion"], Field("auto", description="ig needs a PyTorch encoder")),
        steps=(StrictInt, Field(50, ge=1, le=200, description="integrated gradients: quadrature points")),
        span=(
            list[Annotated[StrictInt, Field(ge=0)]] | None,
            Field(None, min_length=2, max_length=2, description="NER: [start, end] characters of the entity"),
        ),
    )


class Attribution(BaseModel):
    word: str = Field(description="input[start:end]")
    start: int = Field(description="character offset in the input text")
    end: int
    score: float = Field(description="positive: pushes towards the label")


class Explanation(BaseModel):
    label: str
    score: float = Field(description="the label's probability (NER: mean probability of the span's tags)")
    method: str
    attributions: list[Attribution]
    convergence_delta: float | None = Field(None, description="ig: sum of attributions - (f(x) - f(baseline))")
    word: str | None = Field(None, description="NER: the entity, input[start:end]")
    start: int | None = None
    end: int | None = None


class ExplainResponse(BaseModel):
    """Classification: one explanation's fields; NER: ``method`` and ``entities``."""

    model_version: str
    method: str
    label: str | None = None
    score: float | None = None
    attributions: list[Attribution] | None = None
    convergence_delta: float | None = None
    entities: list[Explanation] | None = None
