import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            resp = pb_utils.InferenceRequest(
                model_name="add_sub", requested_output_names=["OUTPUT0", "OUTPUT1"],
                inputs=[pb_utils.get_input_tensor_by_name(r, "INPUT0"),
                        pb_utils.get_input_tensor_by_name(r, "INPUT1")]).exec()
            if resp.has_error():
                out.append(pb_utils.InferenceResponse(error=resp.error()))
                continue
            out.append(pb_utils.InferenceResponse([
                pb_utils.Tensor(n, pb_utils.get_output_tensor_by_name(resp, n).as_numpy().copy())
                for n in ("OUTPUT0", "OUTPUT1")]))
        return out
