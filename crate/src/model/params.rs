//! Operations on any model's parameters: create them now, change their float type.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::{FloatDType, Tensor};

/// Forces every lazily-initialised parameter of `model` to be created now, on the device it
/// was built for (so its values come from that device's seeded generator).
pub fn initialize_params<M: Module>(model: &M) {
    struct Touch;
    impl ModuleVisitor for Touch {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let _ = param.val();
        }
    }
    model.visit(&mut Touch);
}

/// The ids of a module's float parameters.
pub fn param_ids<M: Module>(module: &M) -> Vec<ParamId> {
    struct Ids(Vec<ParamId>);
    impl ModuleVisitor for Ids {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.push(param.id);
        }
    }
    let mut ids = Ids(Vec::new());
    module.visit(&mut ids);
    ids.0
}

/// Converts every float parameter (and running statistic) of `model` to `dtype`, keeping which
/// parameters require gradients.
pub fn cast_float<M: Module>(model: M, dtype: FloatDType) -> M {
    struct Cast(FloatDType);
    impl ModuleMapper for Cast {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let dtype = self.0;
            param.map(|tensor| {
                let trainable = tensor.is_require_grad();
                let cast = tensor.cast(dtype).detach();
                if trainable { cast.require_grad() } else { cast }
            })
        }
    }
    model.map(&mut Cast(dtype))
}
